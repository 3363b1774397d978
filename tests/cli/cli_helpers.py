"""What the CLI tests share: the built command (BITFUSION_BIN), the bundled plans
(BITFUSION_SPECS), running the command with or without a terminal."""
import json
import os
import subprocess
import time
from pathlib import Path

BIN = os.environ.get("BITFUSION_BIN", "bitfusion")
SPECS = Path(os.environ.get("BITFUSION_SPECS", Path(__file__).parents[2] / "examples" / "specs"))


def run(*args, cwd=None, timeout=300, check=None, env=None):
    proc = subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(json.dumps(spec))
    return path


def run_in_terminal(*args, rows=30, columns=120, timeout=60):
    """Runs the command with stdout on a pseudo-terminal of the given size; returns its output."""
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: fds 0-2 are the terminal; pytest's sys.stdout is not
        try:
            fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            os.execvp(BIN, [BIN, *args])
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
