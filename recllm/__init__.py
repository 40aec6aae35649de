"""recllm: a prompt-based generative recommender and its evaluation workbench.

Importing this package needs none of torch, transformers or vllm; the heavy engines are
imported lazily by the backends that use them.
"""

__version__ = "0.1.0"

from recllm.errors import RecllmError

__all__ = ["RecllmError", "__version__"]
