"""Dataset readers and featurisation, one module per format family (glue.py, ner.py, choice.py, classify.py, ...)."""
