"""Tiled translation's peak memory against the tile and the image (cgfw.tools.tiles): the
paper's ResNet-9 generator (ngf 64, instance norm, random weights: memory does not depend on
them), fp32, one image, each setting in a fresh process. Memory is the translation's own: on
the CPU the peak resident set (VmHWM, reset through /proc/self/clear_refs once the network and
the image exist) less the resident set then; on the GPU torch.cuda.max_memory_allocated less
the memory allocated before. The output image itself (3 x H x W floats) is counted: it is the
part that grows with the image.

    python benchmarks/tiles.py [--images 512,1024,2048] [--tiles 0,256,512] [--device cpu|cuda]

A tile of 0 is the whole image at once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import torch
from cgfw.tools import tiles
from cgfw_paper.generators import ResnetOptions
from cgfw_paper.nets import resnet

side, tile, device, ngf = json.loads(sys.argv[1])
dev = torch.device(device)
torch.manual_seed(0)
net = resnet(ResnetOptions(n_blocks=9, ngf=ngf, in_channels=3, out_channels=3)).to(dev).eval()
image = torch.rand(1, 3, side, side, device=dev) * 2 - 1

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)

if dev.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
else:
    open("/proc/self/clear_refs", "w").write("5")
    base = rss("VmRSS:")
start = time.perf_counter()
with torch.no_grad():
    out = tiles.translate_tiled(net, image, tile) if tile else net(image)
if dev.type == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else rss("VmHWM:")
print(json.dumps({"memory": peak - base, "seconds": seconds}))
"""


def measure(side: int, tile: int, device: str, ngf: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([side, tile, device, ngf])],
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"mib": result["memory"] / 2**20, "s": result["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="512,1024,2048", help="image sides (px)")
    parser.add_argument("--tiles", default="0,256,512", help="tile sides (px); 0: whole")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ngf", type=int, default=64)
    opts = parser.parse_args()
    print(f"{'image':>6} {'tile':>6} {'MiB':>8} {'s':>8}")
    for side in (int(s) for s in opts.images.split(",")):
        for tile in (int(t) for t in opts.tiles.split(",")):
            if tile >= side:
                continue  # one piece: the same as the whole image
            r = measure(side, tile, opts.device, opts.ngf)
            print(f"{side:6} {tile or 'whole':>6} {r['mib']:8.0f} {r['s']:8.1f}", flush=True)


if __name__ == "__main__":
    main()
