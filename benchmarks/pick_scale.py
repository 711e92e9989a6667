"""Step 3 of the conversion with the factor chosen by measurement: scale the thresholds of
a converted SNN (searched at scale 1) by each candidate, test each at T on training
images, and write the best as a new converted SNN.  A factor that leaves the network
at chance level or a layer silent is never the best; when every one does, nothing is
written.

    python benchmarks/pick_scale.py RUN/converted_T100.npz RUN/converted.npz \
        --timesteps 5 --images 2000

The choice is made on the first ``--images`` training images (no augmentation), never
on test images.  A deep net converted with too high a factor can leave its last layers
silent at T = 5, and DIET's gradients cannot reach a layer whose potentials never
come near its threshold: the scale is where that is avoided.  The default candidates
cover the authors' range (0.2-0.7 in their scripts) from 0.3 in steps of 0.05: on the CPU's
vgg16_w4 the accuracy at T = 5 rose from 10% (one class) at x0.7 to 31% at x0.6 and fell to
10% again by x0.35, so a coarse grid can miss the best factor by several points.
"""
from __future__ import annotations

import argparse
import sys

from diet_np.backend import get_xp
from diet_np.cli import positive_float, positive_int
from diet_np.conversion import scale_thresholds
from diet_np.engine import apply_process_settings
from diet_np.errors import ChanceLevelError, ConfigError, DietError, chance_level
from diet_np.metrics import network_spike_rate
from diet_np.outputs import check_output_file
from diet_np.pipeline import load_model, model_dataset, save_model
from diet_np.training import evaluate

SCALES = (0.7, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="a converted SNN whose thresholds are unscaled (--scale 1.0)")
    p.add_argument("out", help="the converted SNN to write, thresholds x the best factor")
    p.add_argument("--scales", type=positive_float, nargs="+", default=list(SCALES))
    p.add_argument("--timesteps", type=positive_int, default=5)
    p.add_argument("--images", type=positive_int, default=2000, help="training images to choose on")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    args = p.parse_args(argv)
    try:
        choose_scale(args)
    except DietError as exc:                  # bad input: one line, not a traceback
        print(f"pick_scale.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


def scaled(params, factor):
    """A copy of ``params`` with every threshold x ``factor``."""
    params = {k: v.copy() for k, v in params.items()}
    scale_thresholds(params, factor)
    return params


def choose_scale(args):
    apply_process_settings()
    check_output_file(args.out, overwrite=False, inputs=[args.source])
    xp = get_xp(args.device)
    net, unscaled, model = load_model(args.source, xp, expect_kind=("snn",))
    if model.origin.get("scale") != 1.0:
        raise ConfigError(f"{args.source}: its thresholds are scaled by "
                         f"{model.origin.get('scale')}; pass one converted with --scale 1.0")
    dataset = model_dataset(model)
    x, y = dataset.x_train[:args.images], dataset.y_train[:args.images]
    results, usable = {}, []
    for scale in args.scales:
        ev = evaluate(net, scaled(unscaled, scale), x, y, dataset, T=args.timesteps, mode="snn", xp=xp,
                      show_progress=False)
        silent = [n for n, r in ev.spike_rates.items() if r == 0.0]
        results[scale] = ev.accuracy
        if not silent and not ev.at_chance(net.num_classes):
            usable.append(scale)
        print(f"scale {scale}: accuracy {ev.accuracy:.4f} on {len(x)} training images at "
              f"T={args.timesteps}, network spike rate {network_spike_rate(net, ev.spike_rates)[0]:.3f}"
              + (f", silent layers {', '.join(silent)}" if silent else ""), flush=True)
    if not usable:
        raise ChanceLevelError(f"every candidate scale left {args.source} at chance level (under "
                               f"{chance_level(net.num_classes):.3f}) or with a silent layer at "
                               f"T={args.timesteps}: no best scale, nothing written")
    best = max(usable, key=results.get)
    origin = dict(model.origin, scale=best, scale_chosen_from={
        str(s): a for s, a in results.items()}, scale_chosen_on=f"{len(x)} training images")
    save_model(args.out, scaled(unscaled, best), arch=model.arch, kind="snn", T=args.timesteps,
               data=model.data, origin=origin)
    print(f"best scale {best}: written to {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
