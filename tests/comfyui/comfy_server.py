"""A real ComfyUI server for the API-workflow tests: `main.py --cpu` in a temporary copy of
COMFYUI_DIR with this repository in its custom_nodes/, on a port the OS picks, and a tiny SDXL
checkpoint in its models/checkpoints/.

What is patched, in the test only (the copy and its interpreter; the snapshot is never touched):
- ComfyUI recognises SDXL by the shapes of a full-size UNet (320 channels, transformer depths
  2/2/10/10, 2048-wide text context): a checkpoint it detects unpatched would be ~5 GB. The copy
  gets a test-only custom node (`flow_test_tiny_sdxl.py`, loaded at start-up like any custom node)
  that sets `comfy.supported_models.SDXL.unet_config` to the tiny UNet below, so ComfyUI's own
  detection picks the SDXL model class (model_base.SDXL, SDXL latent format, SDXL text encoders).
- SDXL's text-encoder configs (comfy/sd1_clip_config.json, comfy/clip_config_bigg.json) are made
  3 layers, 32 wide in the copy, so CLIP-L + CLIP-G weigh 3.3 M parameters instead of 820 M.
- The VAE is a TAESD (ComfyUI detects it from its keys; nothing patched).
- torchvision / torchaudio stand-ins (flow_test_support.standins) via a sitecustomize.py.
The checkpoint itself is built in that copy by ComfyUI's own code (comfy.sd.save_checkpoint).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from flow_test_support.files import make_writable

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # tests/: the shared stand-ins
REPO = os.path.dirname(TESTS)
CHECKPOINT = "tiny_rf_sdxl.safetensors"

# the SDXL-architecture UNet of the checkpoint: SDXL's block types at 64 channels, 2 levels
TINY_UNET = {
    "model_channels": 64, "use_linear_in_transformer": True, "transformer_depth": [0, 1],
    "context_dim": 64, "adm_in_channels": 32 + 6 * 256, "use_temporal_attention": False,
}
TINY_TEXT_ENCODER = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                     "num_hidden_layers": 3, "projection_dim": 32}

DETECTION_PATCH = f'''"""Test only (tests/comfyui/comfy_server.py): ComfyUI's SDXL detection accepts the tiny SDXL UNet,
and an output node reports whether an IMAGE is finite (a saved PNG cannot show NaN)."""
import comfy.supported_models
comfy.supported_models.SDXL.unet_config = {TINY_UNET!r}


class FlowTestImageStats:
    @classmethod
    def INPUT_TYPES(cls):
        return {{"required": {{"images": ("IMAGE",)}}}}
    RETURN_TYPES = ()
    FUNCTION = "stats"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def stats(self, images):
        import torch
        return {{"ui": {{"flow_stats": [{{"finite": bool(torch.isfinite(images).all()), "shape": list(images.shape),
                                         "mean": float(images.mean()), "std": float(images.std())}}]}}}}


NODE_CLASS_MAPPINGS = {{"FlowTestImageStats": FlowTestImageStats}}
'''

SITE = '''import sys
sys.path.append({tests!r})
from flow_test_support import standins
standins.install("torchvision", "torchaudio")
'''

BUILD = r'''
import sys, torch
sys.argv = ["build", "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import comfy.model_patcher, comfy.sd, comfy.supported_models, comfy.taesd.taesd
sys.path.insert(0, "custom_nodes")
import flow_test_tiny_sdxl  # noqa: F401  (the detection patch)
unet = dict(comfy.supported_models.SDXL.unet_config, in_channels=4, out_channels=4, channel_mult=[1, 2],
            num_res_blocks=[1, 1], transformer_depth_output=[0, 0, 1, 1], transformer_depth_middle=1,
            use_spatial_transformer=True, legacy=False, num_classes="sequential", image_size=32,
            use_checkpoint=False, use_temporal_resblock=False, num_head_channels=64, dtype=torch.float32)
config = comfy.supported_models.SDXL(unet)
config.set_inference_dtype(torch.float32, None)
generator = torch.Generator().manual_seed(0)
def randomise(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
model = config.get_model({}, "", device=torch.device("cpu"))
randomise(model.diffusion_model)
clip = comfy.sd.CLIP(config.clip_target())
randomise(clip.cond_stage_model)
taesd = comfy.taesd.taesd.TAESD()   # ComfyUI's layers skip weight init: give every weight a value
randomise(taesd)
with torch.no_grad():
    taesd.vae_scale.fill_(1.0)
    taesd.vae_shift.fill_(0.0)
vae = comfy.sd.VAE(sd=taesd.state_dict())
patcher = comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
comfy.sd.save_checkpoint(sys.argv_out, patcher, clip=clip, vae=vae,
                         metadata={"modelspec.prediction_type": "rectified_flow"})
'''.replace("sys.argv_out", "OUT")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """Start with Server(comfy_dir, workdir).start(); .post(workflow) -> outputs; .stop()."""

    def __init__(self, comfy_dir, workdir, python=sys.executable):
        self.comfy_dir, self.workdir, self.python = os.path.abspath(comfy_dir), workdir, python
        self.copy = os.path.join(workdir, "ComfyUI")
        self.process = None
        self.log_path = os.path.join(workdir, "server.log")

    def prepare(self):
        top = self.comfy_dir

        def skip(directory, names):
            return [n for n in names if n == "__pycache__"
                    or (os.path.abspath(directory) == top and n in ("output", "input", "user", "temp"))]
        shutil.copytree(self.comfy_dir, self.copy, ignore=skip)
        make_writable(self.copy)
        for name in ("sd1_clip_config.json", "clip_config_bigg.json"):
            path = os.path.join(self.copy, "comfy", name)
            with open(path) as f:
                config = json.load(f)
            config.update(TINY_TEXT_ENCODER)
            with open(path, "w") as f:
                json.dump(config, f)
        nodes_dir = os.path.join(self.copy, "custom_nodes")
        os.makedirs(nodes_dir, exist_ok=True)
        shutil.copytree(REPO, os.path.join(nodes_dir, "model-sampling-flow"),
                        ignore=shutil.ignore_patterns(".git", ".venv*", "__pycache__", ".pytest_cache", "tests",
                                                      "benchmarks", "out", "*.log", "*.egg-info"))
        with open(os.path.join(nodes_dir, "flow_test_tiny_sdxl.py"), "w") as f:
            f.write(DETECTION_PATCH)
        site = os.path.join(self.workdir, "site")
        os.makedirs(site)
        with open(os.path.join(site, "sitecustomize.py"), "w") as f:
            f.write(SITE.format(tests=TESTS))
        self.frontend = os.path.join(self.workdir, "frontend")
        os.makedirs(self.frontend)
        with open(os.path.join(self.frontend, "index.html"), "w") as f:
            f.write("<html></html>")
        for folder in ("input", os.path.join("models", "checkpoints")):
            os.makedirs(os.path.join(self.copy, folder), exist_ok=True)
        self.env = dict(os.environ, PYTHONPATH=site, PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1",
                        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", DO_NOT_TRACK="1")

    def build_checkpoint(self, timeout=600):
        out = os.path.join(self.copy, "models", "checkpoints", CHECKPOINT)
        code = BUILD.replace("OUT", repr(out))
        result = subprocess.run([self.python, "-c", code], cwd=self.copy, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if result.returncode != 0 or not os.path.isfile(out):
            raise RuntimeError(f"building the tiny SDXL checkpoint failed:\n{result.stderr[-4000:]}")
        return out

    def start(self, timeout=900):
        self.prepare()
        self.build_checkpoint()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--disable-auto-launch", "--disable-api-nodes", "--front-end-root", self.frontend],
            cwd=self.copy, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited ({self.process.returncode}):\n{self.read_log()[-6000:]}")
            try:
                self.get("/object_info/KSampler")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1.0)
        raise RuntimeError(f"ComfyUI did not answer within {timeout} s:\n{self.read_log()[-6000:]}")

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, prompt, timeout=900):
        """POST /prompt, poll /history until the prompt finished; (history entry, output image paths)."""
        body = json.dumps({"prompt": prompt, "client_id": "flow-test"}).encode()
        request = urllib.request.Request(self.url + "/prompt", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                prompt_id = json.loads(response.read())["prompt_id"]
        except urllib.error.HTTPError as error:
            raise AssertionError(f"/prompt refused the workflow: {error.read().decode()[:4000]}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history:        # ComfyUI adds the entry when the prompt finished or failed
                entry = history[prompt_id]
                images = [os.path.join(self.copy, "output", image.get("subfolder", ""), image["filename"])
                          for output in entry.get("outputs", {}).values() for image in output.get("images", [])
                          if image.get("type") == "output"]
                return entry, images
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited while running the prompt:\n{self.read_log()[-6000:]}")
            time.sleep(0.5)
        raise AssertionError(f"prompt {prompt_id} did not finish within {timeout} s:\n{self.read_log()[-4000:]}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()


def start_server(comfy_dir, python=sys.executable):
    workdir = tempfile.mkdtemp(prefix="flow_comfyui_server_")
    return Server(comfy_dir, workdir, python).start()
