"""webui install hook (A1111 and reForge run it with the webui's Python before loading scripts).

This extension needs nothing the webui does not already provide: the core imports only torch and
the standard library, and the webui layer imports gradio and the webui's own modules. So this hook
installs nothing (above all not torch) and only says so when something is missing.
"""
import importlib.util
import sys


def missing_modules():
    return [name for name in ("torch",) if importlib.util.find_spec(name) is None]


if __name__ == "__main__":
    missing = missing_modules()
    if missing:
        print(f"[flow sampling] this webui's Python lacks {', '.join(missing)}; the extension will not load",
              file=sys.stderr)
