"""Publishing a run's model and dataset to the Hugging Face hub, each folder with its card.

Every refusal is one line and comes before anything is sent: an invalid repo name, a card that would be empty, a
demo's model or data (unless asked with ``allow_demo``), the hub's offline mode, no token. The token goes to the
client and is never printed.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..artifacts import atomic_write_text, json_text, read_json
from ..config import Config, load_config
from ..errors import EchoScriptError, InputError
from .facts import FACTS_NAME
from .render import (
    _dataset_folder,
    _model_folder,
    _save_card,
    card_problems,
    render_dataset_card,
    render_model_card,
    write_cards,
)

__all__ = ["PublishRefused", "preflight", "publish"]

class PublishRefused(EchoScriptError):
    """``publish`` will not push: the one-line reason says what to do. Nothing was uploaded."""


def _resolve_run(run: Config | str | os.PathLike, output_root: str | os.PathLike | None) -> tuple[Path, dict]:
    """``run`` (a Config, a parameter file or a run folder) → (run folder, facts), writing the cards first when
    the parameters are at hand."""
    if isinstance(run, Config) or Path(run).is_file():
        cfg = run if isinstance(run, Config) else load_config(run, output_root=output_root)
        write_cards(cfg)
        root = cfg.paths.root
    else:
        root = Path(run)
        if not root.is_dir():
            raise InputError(f"{root}: no such run folder or parameter file; pass outputs/<run> or its params YAML")
    facts_path = root / FACTS_NAME
    if not facts_path.is_file():
        raise PublishRefused(f"{root}: no cards yet ({FACTS_NAME} missing); run `echoscript report PARAMS` or "
                             f"pass the run's parameter file instead of its folder")
    return root, read_json(facts_path)


def _check_repo(repo: str, flag: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError:
        raise PublishRefused(f"{flag} {repo!r} is not a valid hub repo name; use OWNER/NAME (letters, digits, "
                             f"'-', '_', '.'; at most 96 characters)") from None
    if repo.count("/") != 1:
        raise PublishRefused(f"{flag} {repo!r} is not a valid hub repo name; use OWNER/NAME")


def preflight(facts_demo: dict[str, list[str]], *, model_repo: str | None = None, dataset_repo: str | None = None,
              allow_demo: bool = False, token: str | None = None) -> str:
    """The checks that need no card and no network: repo names, demo model or data, offline mode, token.

    Returns the token to use; raises :class:`PublishRefused` with one line otherwise.
    """
    from huggingface_hub import constants, get_token

    if model_repo is None and dataset_repo is None:
        raise PublishRefused("nothing to publish: pass --model OWNER/NAME and/or --dataset OWNER/NAME")
    for repo, flag in ((model_repo, "--model"), (dataset_repo, "--dataset")):
        if repo is not None:
            _check_repo(repo, flag)
    if not allow_demo:
        for repo, kind in ((model_repo, "model"), (dataset_repo, "dataset")):
            reasons = facts_demo.get(kind) or []
            if repo is not None and reasons:
                raise PublishRefused(f"refusing to publish a demo {kind} to {repo}: {reasons[0]}; pass --allow-demo "
                                     f"to push it anyway")
    if constants.is_offline_mode():
        raise PublishRefused("the hub is in offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set); unset it "
                             "to publish")
    token = token or get_token()
    if not token:
        raise PublishRefused("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)")
    return token


def _upload(api, repo: str, kind: str, folder: Path, card, *, private: bool | None, message: str) -> str:
    from huggingface_hub import CommitOperationAdd

    url = api.create_repo(repo, repo_type=kind, exist_ok=True, private=private)
    ops = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
           for p in sorted(folder.rglob("*"))
           if p.is_file() and p.name != "README.md"
           and not any(part.startswith(".") for part in p.relative_to(folder).parts)]  # .rows_hash: bookkeeping
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
    info = api.create_commit(url.repo_id, ops, commit_message=message, repo_type=kind)
    return info.commit_url


def publish(run: Config | str | os.PathLike, *, model_repo: str | None = None, dataset_repo: str | None = None,
            allow_demo: bool = False, private: bool | None = None, token: str | None = None,
            endpoint: str | None = None, output_root: str | os.PathLike | None = None,
            log=print) -> dict[str, str]:
    """Push a run's fine-tuned model and/or curated dataset to the hub, each with its card.

    Args:
        run: the run's :class:`Config`, its parameter file (the cards are rewritten first) or its folder
            (``outputs/<run>``; the cards written at the end of the run are used).
        model_repo: hub repo (``OWNER/NAME``) for ``04_finetuning/final/``.
        dataset_repo: hub dataset repo for ``01_curation/exports/hf/``.
        allow_demo: push even a demo's model or data (tiny random model, random-weight dry run, demo corpus).
        private: create new repos private (``None``: the hub's default).
        token: a hub token; default ``HF_TOKEN`` or the stored login. Never printed.
        endpoint: the hub's URL (default ``HF_ENDPOINT`` or huggingface.co).

    Returns:
        ``{"model": commit_url, "dataset": commit_url}`` for what was pushed.

    Raises:
        PublishRefused: one line, before anything is sent: invalid repo name, a card that would be empty, a demo
            model or dataset without ``allow_demo``, hub offline mode, no token.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if model_repo is None and dataset_repo is None:
        raise PublishRefused("nothing to publish: pass --model OWNER/NAME and/or --dataset OWNER/NAME")
    for repo, flag in ((model_repo, "--model"), (dataset_repo, "--dataset")):
        if repo is not None:
            _check_repo(repo, flag)
    root, facts = _resolve_run(run, output_root)
    targets = []
    if model_repo is not None:
        folder = _model_folder(root)
        if not (folder / "config.json").is_file() or not facts.get("model"):
            raise PublishRefused(f"{folder}: no fine-tuned model here; run stage 04_finetuning first")
        targets.append(("model", model_repo, folder,
                        render_model_card(facts, repo_id=model_repo, dataset_repo=dataset_repo)))
    if dataset_repo is not None:
        folder = _dataset_folder(root)
        if not (folder / "dataset_dict.json").is_file() or not facts.get("dataset"):
            raise PublishRefused(f"{folder}: no curated dataset export here; run stage 01_curation first")
        targets.append(("dataset", dataset_repo, folder,
                        render_dataset_card(facts, repo_id=dataset_repo, model_repo=model_repo)))
    for kind, repo, _folder, card in targets:
        problems = card_problems(card, kind, facts)
        if problems:
            raise PublishRefused(f"the {kind} card for {repo} would be empty ({'; '.join(problems)}); run the "
                                 f"stages first, then `echoscript report PARAMS`")
    token = preflight(facts.get("demo") or {}, model_repo=model_repo, dataset_repo=dataset_repo,
                      allow_demo=allow_demo, token=token)
    api = HfApi(endpoint=endpoint, token=token)
    pushed: dict[str, str] = {}
    for kind, repo, folder, card in targets:
        try:
            pushed[kind] = _upload(api, repo, kind, folder, card, private=private,
                                   message=f"EchoScript run {facts['run']['name']}: {kind} with its card")
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", "?")
            raise PublishRefused(f"the hub refused the {kind} upload to {repo} (HTTP {status}); check that the "
                                 f"token can write to that namespace") from None
        _save_card(card, folder / "README.md")  # the card on disk is now the one on the hub
        facts.setdefault("published", {})[kind] = repo
        atomic_write_text(root / FACTS_NAME, json_text(facts))
        log(f"{kind}: {folder} → {repo} ({pushed[kind]})")
    return pushed
