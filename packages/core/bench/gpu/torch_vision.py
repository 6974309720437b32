"""PyTorch fp16 baseline for the vision tower alone on the GPU: PickScore_v1's architecture (ViT-H/14,
random weights: cost does not depend on them), CLIPVisionModelWithProjection in fp16 on CUDA, batches of
8 and 64 of 224 px pixels already on the device. Runs on the lent GPU machine (torch + transformers there).
Prints one line per batch and a JSON line; bench/gpu/run.sh puts them beside ref_timing.py's.

usage: python3 torch_vision.py [--batches 8,64] [--repeats 10]
"""
import argparse, json, time
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

ap = argparse.ArgumentParser()
ap.add_argument("--batches", default="8,64")
ap.add_argument("--repeats", type=int, default=10)
a = ap.parse_args()
cfg = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                       patch_size=14, image_size=224, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=1024)
model = CLIPVisionModelWithProjection(cfg).eval().half().cuda()
res = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "rows": []}
with torch.no_grad():
    for b in [int(x) for x in a.batches.split(",")]:
        px = torch.randn(b, 3, 224, 224, device="cuda", dtype=torch.float16)
        for _ in range(3):
            model(pixel_values=px).image_embeds
        torch.cuda.synchronize()
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            model(pixel_values=px).image_embeds.float().cpu()
            times.append(time.perf_counter() - t)
        times.sort()
        ms = times[len(times) // 2] * 1e3
        res["rows"].append({"batch": b, "ms": round(ms, 2), "images_per_s": round(b / ms * 1e3, 1)})
        print(f"torch fp16 vision batch {b}: {ms:.1f} ms ({b / ms * 1e3:.0f} images/s)", flush=True)
print(json.dumps(res))
