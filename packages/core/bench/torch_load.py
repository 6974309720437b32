"""Start-up of the PyTorch baseline, for `pnpm bench` (bench/startup.ts): imports ../shared/bench/clip_torch.py
(the same-run baseline), loads the same model.safetensors the converter read, as that script does, then runs
nothing (Debian's torch links the reference BLAS, whose run times would say nothing). Prints one JSON line
(seconds, MB).
usage: /usr/bin/python3 torch_load.py <shared bench dir> <HF model dir>"""
import json, os, sys, time

t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import clip_torch  # noqa: E402  (imports torch)
import torch  # noqa: E402

t1 = time.perf_counter()
torch.set_num_threads(os.cpu_count() or 1)
cfg = json.load(open(os.path.join(sys.argv[2], "config.json")))
w = clip_torch.load_safetensors(os.path.join(sys.argv[2], "model.safetensors"))
clip = clip_torch.Clip(w, cfg)
t2 = time.perf_counter()
print(json.dumps({"importS": t1 - t0, "loadS": t2 - t1, "peakRssMb": clip_torch.rss_mb()}))
