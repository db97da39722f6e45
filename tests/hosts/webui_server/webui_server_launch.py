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
    sys.path.append(os.path.dirname(os.path.dirname(HERE)))     # tests/: the shared stand-ins
    from flow_test_support import standins
    real_ldm = os.path.join(host_dir, "repositories", "stable-diffusion-stability-ai", "ldm", "util.py")
    if kind in ("a1111", "forge") or os.path.isfile(real_ldm):
        # only packages without a loadable CPU wheel are stood in for (k_diffusion/utils.py imports
        # torchvision; A1111's modules import timm)
        standins.install("torchvision", "timm")
    else:
        reforge_tests = os.path.join(os.path.dirname(HERE), "reforge")
        sys.path.insert(0, reforge_tests)
        import reforge_host
        reforge_host.install_stand_ins(host_dir)   # + Stability's ldm / sgm, which launch.py would clone
        sys.path.remove(reforge_tests)


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
