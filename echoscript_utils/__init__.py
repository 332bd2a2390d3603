"""EchoScript Workbook: script-aware film-score generation, from a folder of music to a listening test.

The package holds all the logic; the numbered notebooks in ``notebooks/`` call it one step at a time.
Modules are named by concept: one per stage and notebook, each with ``run(cfg)`` (``curation``, ``annotation``,
``alignment``, ``finetuning``, ``generation``, ``evaluation``, ``listening``, ``scoring``); ``models`` with
``musicgen_sampling`` and the ``tagging`` and ``embeddings`` views on them; ``fad`` and ``stats``; ``plots``;
``audio``, ``audio_forensics``, ``features``, ``melody`` and ``synth``; ``dataset``, ``captions``, ``prompts``,
``taxonomy`` and ``demo_corpus``; ``config``, ``artifacts``, ``errors`` and ``notebook`` at the ground;
``pipeline``, ``report`` and ``cli`` on top. The README's "Where the code lives" maps them.
"""

__version__ = "0.1.0"

from .config import STAGES, Config, load_config
from .errors import EchoScriptError

__all__ = ["STAGES", "Config", "EchoScriptError", "__version__", "load_config"]
