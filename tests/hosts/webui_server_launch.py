"""Starts a webui's real server the way `python launch.py ...` does, in the host's own Python.

    python webui_server_launch.py KIND HOST_DIR -- LAUNCH_ARGS...

KIND is a1111, reforge or forge. Before launch.py runs, the import-only stand-ins the host tests
use are installed (torchvision and timm have no loadable CPU wheel for torch 2.13 here; reForge
also imports Stability's `ldm`/`sgm`, which launch.py would clone) and name lookups other than
localhost fail, so the server never reaches the network. Nothing else is changed: launch.py,
webui.py, the UI, the API and every extension are the host's own.
"""
import os
import runpy
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def no_network():
    real = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("localhost", "127.0.0.1", "0.0.0.0", "::1", None):
            raise OSError(f"network disabled in the webui server test (tried {host!r})")
        return real(host, *args, **kwargs)
    socket.getaddrinfo = local_only


def install_stand_ins(kind, host_dir):
    sys.path.insert(0, HERE)
    if kind == "a1111":
        os.environ["A1111_DIR"] = host_dir
        import a1111_runner
        sys.meta_path.insert(0, a1111_runner._Finder())
    else:
        import reforge_host
        real_ldm = os.path.join(host_dir, "repositories", "stable-diffusion-stability-ai", "ldm", "util.py")
        if kind == "forge" or os.path.isfile(real_ldm):
            # Forge, and reForge with Stability's repositories in place: only packages without a
            # loadable CPU wheel are stood in for (k_diffusion/utils.py imports torchvision)
            reforge_host._STAND_IN_ROOTS.clear()
            sys.meta_path.insert(0, reforge_host._StandInFinder())
            for root in ("torchvision", "timm"):
                try:
                    __import__(root)
                except Exception:
                    for key in [k for k in sys.modules if k.split(".")[0] == root]:
                        del sys.modules[key]
                    reforge_host._STAND_IN_ROOTS.add(root)
        else:
            reforge_host.install_stand_ins(host_dir)
    sys.path.remove(HERE)


def main():
    kind, host_dir = sys.argv[1], os.path.abspath(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1:]
    install_stand_ins(kind, host_dir)
    no_network()
    os.chdir(host_dir)
    sys.path.insert(0, host_dir)
    sys.argv = [os.path.join(host_dir, "launch.py")] + args
    runpy.run_path(os.path.join(host_dir, "launch.py"), run_name="__main__")


if __name__ == "__main__":
    main()
