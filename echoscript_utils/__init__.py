"""EchoScript Workbook: script-aware film-score generation, from a folder of music to a listening test.

The package holds all the logic; the numbered notebooks in ``notebooks/`` call it one step at a time.
Modules are named by concept: ``config``, ``audio``, ``features``, ``dataset``, ``demo_corpus``, ``tagging``,
``prompts``, ``alignment``, ``models``, ``training``, ``generation``, ``fad``, ``listening``, ``plots``,
``pipeline`` and ``cli``.
"""

__version__ = "0.1.0"

from .config import STAGES, Config, load_config
from .errors import EchoScriptError

__all__ = ["STAGES", "Config", "EchoScriptError", "__version__", "load_config"]
