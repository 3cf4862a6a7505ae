"""Dataset readers and featurisation, one module per format family (glue.py, ner.py, choice.py, classify.py, ...).

`IGNORE_INDEX` is the one label value every loss skips (padding, unmasked MLM positions, sub-word
continuations): -100, torch's `cross_entropy` default, so HF's labels mean the same here.
"""
IGNORE_INDEX = -100
