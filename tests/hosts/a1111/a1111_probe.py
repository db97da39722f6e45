"""A test-only A1111 extension script (installed as extensions/flow-test-probe/scripts/flow_test_probe.py).

It records what the webui sampled (`post_sample`: the latents before decoding) and which denoiser
class served each model call (`on_cfg_denoiser`), and, when the processing object asks for it,
runs a second img2img pass from `postprocess` with its own processing object and a script runner
holding only this probe: the way ADetailer runs its inpaint pass, without the flow script's
arguments.
"""
import copy

import modules.scripts as scripts
from modules import processing, script_callbacks

FLOW_TEST_PROBE = True
samples = []
denoisers = []
noises = []         # the unit noise each txt2img pass starts from (process_before_every_sampling's x)


def reset():
    samples.clear()
    denoisers.clear()
    noises.clear()


def _on_cfg_denoiser(params):
    denoisers.append(type(getattr(params.denoiser, "model_wrap", None)).__name__)


script_callbacks.on_cfg_denoiser(_on_cfg_denoiser)


class FlowTestProbe(scripts.Script):
    def title(self):
        return "Flow test probe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def process_before_every_sampling(self, p, *args, **kwargs):
        x = kwargs.get("x")
        if x is not None:
            noises.append(x.detach().clone().cpu())

    def post_sample(self, p, ps, *args):
        samples.append(ps.samples.detach().clone().cpu())

    def postprocess(self, p, processed, *args):
        request = getattr(p, "flow_probe_second_pass", None)
        if not request or getattr(p, "flow_probe_is_second_pass", False):
            return
        second = processing.StableDiffusionProcessingImg2Img(
            init_images=processed.images[: p.batch_size], denoising_strength=request["strength"],
            prompt=p.prompt, negative_prompt=p.negative_prompt, steps=request["steps"], cfg_scale=p.cfg_scale,
            sampler_name=p.sampler_name, scheduler=p.scheduler, seed=p.seed + 1, width=p.width, height=p.height,
            batch_size=p.batch_size, do_not_save_samples=True, do_not_save_grid=True)
        runner = copy.copy(p.scripts)
        runner.alwayson_scripts = [self]
        runner.callback_map = {}
        second.scripts = runner
        second.script_args = p.script_args
        second.flow_probe_is_second_pass = True
        second.is_api = True
        processing.process_images(second)
