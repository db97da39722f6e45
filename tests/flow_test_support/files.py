"""Writable copies of host snapshots (the hosts write next to themselves; ../shared may be read-only
and owned by another user, so copied files keep its read-only modes unless made writable)."""
import os
import shutil


def make_writable(tree):
    """chmod u+w (dirs 755, files 644, executables 755) across `tree`; symlinks are left alone."""
    for root, dirs, files in os.walk(tree):
        os.chmod(root, 0o755)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)


def copy_host(source, destination, ignore=None):
    """shutil.copytree(source, destination) without __pycache__ (plus `ignore`), made writable."""
    def skip(directory, names):
        skipped = {n for n in names if n == "__pycache__"}
        if ignore is not None:
            skipped |= set(ignore(directory, names))
        return skipped
    shutil.copytree(source, destination, ignore=skip)
    make_writable(destination)
    return destination
