"""``dynsnip push``: publish a saved detector (a training run's ``model/``) on the Hugging Face Hub."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .exit_codes import EXIT_OK, usage_error


LOGIN_HINT = "run `hf auth login`, set HF_TOKEN or pass --token"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "push",
        help="publish a saved detector (a run's model/) on the Hugging Face Hub",
        description=(
            "Load the detector in FOLDER (written by dynsnip train or save_pretrained; a run folder means its "
            "model/), so that a broken folder fails here rather than for the people who download it, then upload "
            "config.json, model.safetensors and the model card (with the recorded training recipe and evaluation "
            "results) to REPO in one commit. Anyone can then load it with "
            "`import dynsnip; timm.create_model('hf-hub:REPO', pretrained=True)` or `dynsnip predict --checkpoint "
            "hf-hub:REPO`. Log in first with `hf auth login` or set HF_TOKEN."
        ),
        epilog="example: dynsnip push runs/ff-c23/model me/dil-ff-c23 --license apache-2.0",
    )
    p.add_argument("folder", type=Path, metavar="FOLDER", help="hub-layout folder (or a run folder with model/)")
    p.add_argument("repo", metavar="REPO", help="Hub repo owner/name (created if needed)")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private")
    p.add_argument("--revision", help="branch to commit to (default main); it must exist already")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--message", default="Upload DIL detector with dynsnip", help="commit message")
    p.add_argument("--license", help="licence id for a generated card, e.g. apache-2.0 (default: the saved card's; "
                        "a card edited by hand is uploaded as it is)")
    p.add_argument("--replace-card", action="store_true",
                   help="overwrite a README.md the repo already has even if it was edited by hand (one dynsnip "
                        "rendered is always rendered again)")
    p.add_argument("--replace-model", action="store_true",
                   help="commit over a detector of another architecture or other model options already in the "
                        "repo (new weights of the same detector never need it)")
    p.add_argument("--token", help="Hub token (default: the stored login or HF_TOKEN)")
    p.set_defaults(func=run_push)
    return p


def _is_connection_error(err: BaseException) -> bool:
    """A refused / timed-out / broken connection, whichever HTTP client huggingface_hub uses
    (httpx-style ``TransportError``, requests' or the builtin ``ConnectionError``)."""
    return any(cls.__name__ in ("TransportError", "ConnectionError") for cls in type(err).__mro__)


def run_push(args: argparse.Namespace) -> int:
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalTokenNotFoundError
    from huggingface_hub.utils import validate_repo_id

    from ..engine.train import saved_model_folder
    from ..hub import push_to_hub
    from ..hub.errors import ModelLoadError
    from ..hub.save import CardKeptWarning, NoSuchBranchError, OtherDetectorError

    folder = saved_model_folder(args.folder)
    if folder is None:
        what = ("does not exist" if not args.folder.exists() else "is a file, not a folder" if not args.folder.is_dir()
                else "holds no config.json")
        return usage_error("push", f"{args.folder} {what}; expected a folder written by dynsnip train "
                                   "(its model/) or dynsnip.save_pretrained")
    if args.repo.count("/") != 1 or not all(args.repo.split("/")):
        return usage_error("push", f"REPO must be owner/name, got {args.repo!r}")
    try:
        validate_repo_id(args.repo)
    except HFValidationError as err:
        return usage_error("push", f"REPO {args.repo!r} is not a valid repo id: {err}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CardKeptWarning)
            commit = push_to_hub(
                folder, args.repo, token=args.token, private=args.private, revision=args.revision,
                commit_message=args.message, create_pr=args.create_pr, license=args.license,
                replace_card=args.replace_card, replace_model=args.replace_model,
            )
        for warning in caught:  # the kept card in one line; anything else as Python shows it
            if issubclass(warning.category, CardKeptWarning):
                print(f"dynsnip push: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    except ModelLoadError as err:
        return usage_error("push", f"{folder} does not load as a DIL detector: {err}")
    except NoSuchBranchError as err:  # checked before anything was created
        return usage_error("push", f"--revision {args.revision}: {err}")
    except OtherDetectorError as err:  # checked before anything was uploaded
        return usage_error("push", str(err))
    except ValueError as err:  # non-finite weights: nothing was uploaded
        return usage_error("push", f"{folder}: {err}")
    except LocalTokenNotFoundError:
        return usage_error("push", f"not logged in to the Hub: {LOGIN_HINT}")
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        hint = f"; {LOGIN_HINT} (a token with write access to {args.repo})" if status in (401, 403) else ""
        return usage_error("push", f"the Hub refused the upload to {args.repo}: {str(err).splitlines()[0]}{hint}")
    except Exception as err:
        if not _is_connection_error(err):
            raise
        return usage_error("push", f"cannot reach the Hub at {constants.ENDPOINT}: {err}")
    print(f"pushed {folder} to {args.repo}: {commit.commit_url}")
    print(f"load it with: timm.create_model('hf-hub:{args.repo}', pretrained=True) after `import dynsnip`")
    return EXIT_OK
