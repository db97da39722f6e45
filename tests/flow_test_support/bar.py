"""The acceptance bar every host test of a sampler uses.

The analytic models' data is per element N(DATA_MEAN, DATA_STD^2); a correct sampler at the tests'
step counts lands within MEAN_TOLERANCE of the mean and STD_TOLERANCE of the std (several thousand
draws per measurement: the standard errors are about 0.003 and 0.002).
"""
DATA_MEAN, DATA_STD = 0.5, 0.3
MEAN_TOLERANCE, STD_TOLERANCE = 0.01, 0.02


def within(mean, std, data_mean=DATA_MEAN, data_std=DATA_STD, mean_tol=MEAN_TOLERANCE, std_tol=STD_TOLERANCE):
    """True when (mean, std) meets the bar."""
    return abs(mean - data_mean) <= mean_tol and abs(std - data_std) <= std_tol


def stats_within(stats, mean=DATA_MEAN, std=DATA_STD, mean_tol=MEAN_TOLERANCE, std_tol=STD_TOLERANCE):
    """True when a runner's `stats` (dict with finite, mean, std; or None) are finite and meet the bar."""
    return stats is not None and stats.get("finite", False) and \
        within(stats["mean"], stats["std"], mean, std, mean_tol, std_tol)
