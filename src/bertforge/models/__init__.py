"""Model families: one folder each (`bert/`, `seq2seq/`, `word2vec/`), plus the notes\x27 counting models."""
