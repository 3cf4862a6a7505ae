"""bertforge: the Transformer and BERT from first principles."""

import os as _os

# oneDNN keeps up to 1,024 compiled matmul primitives, one per input shape, each with its own buffers;
# with varied-length batches under bf16 on a CPU every batch brings new shapes and the cache grew a
# process by ~18 MB per shape (a SQuAD fine-tuning run reached 12.7 GB and was OOM-killed, and so nearly
# did HF's model in the same loop). 32 bounds it at no speed cost (a bf16 linear layer forward and
# backward on 300 batch sizes: 21.6 s and 1.2 GB with 32, 23.9 s and 5.5 GB with the default). Read when oneDNN first compiles a primitive; a value
# the user set wins.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32")
