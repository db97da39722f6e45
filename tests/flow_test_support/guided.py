"""The classifier-free guidance pairs (positive-prompt field, negative-prompt field) that
tests/core/test_samplers_cfg.py, tests/core/test_oracles.py and benchmarks/bench_cfg.py drive
`model_sampling_flow.oracles.GuidedField` with: one definition, so the tests hold the very cases
the benchmark reports. The negative prompt's data is broader (and for the Gaussian centred elsewhere).
"""
from model_sampling_flow.oracles import GaussianMixtureField, gaussian_field, mixture_field

# name -> (cond, uncond, description)
GUIDED_PAIRS = {
    "gaussian": (gaussian_field(0.5, 0.3), gaussian_field(0.0, 0.6),
                 "cond N(0.5, 0.3^2), uncond N(0, 0.6^2)"),
    "two_modes": (mixture_field((-1.0, 1.0), (0.2, 0.2), (0.7, 0.3)),
                  mixture_field((-1.0, 1.0), (0.3, 0.3), (0.5, 0.5)),
                  "cond 0.7 N(-1, 0.2^2) + 0.3 N(1, 0.2^2), uncond 0.5 N(-1, 0.3^2) + 0.5 N(1, 0.3^2)"),
    "three_modes": (GaussianMixtureField([-0.8, 0.1, 0.9], [0.1, 0.15, 0.12], [0.3, 0.4, 0.3]),
                    GaussianMixtureField([-0.8, 0.1, 0.9], [0.2, 0.25, 0.2], [0.4, 0.2, 0.4]),
                    "cond 0.3 N(-0.8, 0.1^2) + 0.4 N(0.1, 0.15^2) + 0.3 N(0.9, 0.12^2), uncond the same "
                    "means, stds 0.2/0.25/0.2, weights 0.4/0.2/0.4"),
}
