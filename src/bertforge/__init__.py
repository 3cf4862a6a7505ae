"""bertforge: the Transformer and BERT from first principles."""
