"""BERT's WordPiece tokenizer, id for id with HF `BertTokenizer` (D1).

- `wordpiece`: text -> pieces with character offsets (basic tokenization + WordPiece, Devlin et al. 2019 section 3)
- `tokenizer`: pieces -> model inputs (`Tokenizer`: [CLS]/[SEP], pairs, truncation, padding, batches, vocab files)
- `training`: learn a WordPiece vocabulary from a corpus (`train_vocab`)

    from bertforge.tokenizer import Tokenizer
    tok = Tokenizer.from_pretrained(model_dir)
"""
from bertforge.tokenizer.tokenizer import (
                                           SPECIAL_TOKENS,
                                           BasicTokenizer,
                                           BatchEncoding,
                                           Encoding,
                                           Tokenizer,
                                           WordPiece,
                                           check_text,
                                           train_vocab,
)

__all__ = ["SPECIAL_TOKENS", "BasicTokenizer", "WordPiece", "Tokenizer", "Encoding", "BatchEncoding",
           "train_vocab", "check_text"]
