"""Run `dynsnip predict` with a clip loader that acts at given videos: for tests of Ctrl-C / SIGTERM.

argv: MARKS_DIR ACTION predict-args...; ACTION: "term-main:N" (the main process gets SIGTERM before
its N-th video is loaded, from itself or from the loader process loading it), "term-group:N" (SIGTERM to
the whole process group: main and loader processes, as a scheduler stops a job), "sleep-rank1:N" (rank 1 writes MARKS/rank1_sleeping and sleeps before its N-th video).
Every rank that reaches wait_for_ranks writes MARKS/rank<r>_waiting first."""
import os
import signal
import sys
import time
from pathlib import Path

import dynsnip.cli.predict as predict
from dynsnip.cli import main
from dynsnip.engine import distributed

marks, action, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
what, at = action.split(":")
rank = int(os.environ.get("RANK", "0"))
main_pid = os.getpid()


class Loader:
    def __init__(self, loader):
        self.loader, self.calls = loader, 0

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __call__(self, path, *args, **kwargs):
        self.calls += 1
        if self.calls == int(at):
            if what == "term-main":
                os.kill(main_pid, signal.SIGTERM)
                time.sleep(5)  # the signal arrives in the main process meanwhile
            elif what == "term-group":
                os.killpg(os.getpgid(0), signal.SIGTERM)
                time.sleep(5)
            elif what == "sleep-rank1" and rank == 1:
                (marks / "rank1_sleeping").touch()
                time.sleep(120)
        return self.loader(path, *args, **kwargs)


real_loader, real_wait = predict.clip_loader, getattr(distributed, "wait_for_ranks", None)
predict.clip_loader = lambda *a, **k: Loader(real_loader(*a, **k))


def wait_for_ranks(*args, **kwargs):
    (marks / f"rank{rank}_waiting").touch()
    return real_wait(*args, **kwargs)


distributed.wait_for_ranks = wait_for_ranks
sys.exit(main(argv))
