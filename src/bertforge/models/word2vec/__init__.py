"""word2vec (Mikolov et al. 2013): skip-gram and CBOW with negative sampling, word vectors and their evaluation."""
