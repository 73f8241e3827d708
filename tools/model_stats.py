"""The compute budget of a config's model: parameters, FLOPs per training step and per
forecast, activation memory of a training step, and what they mean on N GPUs.

    python tools/model_stats.py configs/occ_nuscenes.py [--batch B] [--dtype bfloat16] \
        [--gpus 8] [--tflops 250] [--input synthetic|occ3d] [--cfg-options k=v ...]

Everything is measured on one real step of the config's model (random weights) on the
CPU at ``--measure-batch`` (default 1) and scaled linearly to ``--batch`` (default: the
config's ``train_dataloader.batch_size``, per GPU):

* FLOPs of every dense op from ``torch.utils.flop_counter.FlopCounterMode`` (matmuls,
  convolutions, attention; forward and backward), plus those of the sparse
  convolutions, which run outside torch's dispatcher (spconv): ``2 * pairs * C_in *
  C_out`` per layer, the pairs counted on the layer's actual input and output voxels
  (one GEMM per kernel offset, as spconv computes it; backward twice the forward for
  layers that train). A forecaster's step is the steady state of training: the frozen
  tokenizer's latents come from the latent cache (``cache_latents``), so its encoding is
  listed apart (the first epoch only).
* Activation memory: the bytes of the tensors autograd keeps for the backward pass
  (``torch.autograd.graph.saved_tensors_hooks``; storages counted once, parameters left
  out) in the step's forward, under ``--dtype`` autocast (CPU autocast keeps the dtypes a
  GPU's would). Optimizer state, gradients and the allocator's slack come on top.
* A forecast: one window at batch 1 (encode the past, the sampler's steps, decode).

The budget lines turn FLOPs into time at an assumed sustained ``--tflops`` per GPU
(bf16 dense; an H100 SXM peaks at 989): training hours of the config's ``max_iters`` on
``--gpus`` GPUs at ``--batch`` per GPU, and forecast frames/s at batch 1 if compute-bound.
Weights are random: an untrained tokenizer decoder keeps about 12 % of the coarse voxels
(its prior), a trained one what the scene holds.
"""
from occwm.runtime import configure_threads

if __name__ == '__main__':  # first: OpenMP reads its settings when torch loads
    configure_threads()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import occwm.compat  # noqa: F401, E402  (spconv CPU shim)
from spconv.pytorch.conv import SparseConvolution  # noqa: E402
from occwm.runtime import SetupError  # noqa: E402

# The peers' published sizes (parameters, whole model), for the comparison line.
PEERS = {'OccWorld': 72e6, 'DOME': 444e6, 'I2-World': 23e6}
OCC3D_WINDOWS = 21_130   # Occ3D-nuScenes train: 28,130 frames in 700 scenes; 11-frame windows
OCC3D_FRAMES = 28_130


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--batch', type=int, help="per-GPU batch of the budget (default: the "
                                                  "config's train_dataloader.batch_size)")
    parser.add_argument('--measure-batch', type=int, default=1,
                        help='batch of the measured CPU step (FLOPs and memory scale linearly)')
    parser.add_argument('--dtype', choices=['float32', 'bfloat16'], default='bfloat16',
                        help='autocast dtype of the measured step (default bfloat16, as the '
                             'nuScenes configs train)')
    parser.add_argument('--gpus', type=int, default=8, help='GPUs of the training budget')
    parser.add_argument('--tflops', type=float, default=250.0,
                        help='assumed sustained TFLOP/s per GPU (bf16) for the time estimates')
    parser.add_argument('--input', choices=['synthetic', 'occ3d'], default='synthetic',
                        help='occupancy of the measured step: a synthetic scene, or the real '
                             'Occ3D-nuScenes frame of ../shared/data/occ3d_sample in every '
                             'frame (Occ3D grid only)')
    parser.add_argument('--skip-forecast', action='store_true', help='no forecast measurement')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, e.g. model.dit.preset=L')
    return parser.parse_args(argv)


# ---------------------------------------------------------------- sparse convolutions
def _neighbour_pairs(indices: torch.Tensor, spatial_shape, kernel, dilation) -> int:
    """Input-output pairs of a submanifold convolution: for every kernel offset, the
    active voxels whose neighbour at that offset is active too. ``indices`` ``(M, 4)``
    ``(batch, x, y, z)``."""
    c = indices.long()
    dims = torch.tensor([int(s) for s in spatial_shape])
    scale = torch.tensor([int(dims[1] * dims[2]), int(dims[2]), 1])

    def key(xyz, b):
        return b * int(dims.prod()) + (xyz * scale).sum(1)

    keys = torch.sort(key(c[:, 1:], c[:, 0])).values
    pairs = 0
    ranges = [range(-(k // 2) * d, (k // 2) * d + 1, d) for k, d in zip(kernel, dilation)]
    for off in itertools.product(*ranges):
        xyz = c[:, 1:] + torch.tensor(off)
        inside = ((xyz >= 0) & (xyz < dims)).all(1)
        q = key(xyz[inside], c[inside, 0])
        pos = torch.searchsorted(keys, q).clamp(max=len(keys) - 1)
        pairs += int((keys[pos] == q).sum())
    return pairs


def sparse_conv_flops(module, inp, out) -> int:
    """Forward FLOPs ``2 * pairs * C_in * C_out`` of one spconv convolution call."""
    x = inp[0]
    n_in, n_out = x.indices.shape[0], out.indices.shape[0]
    kernel = tuple(module.kernel_size)
    stride = tuple(module.stride)
    if module.subm:
        pairs = _neighbour_pairs(x.indices, x.spatial_shape, kernel, tuple(module.dilation))
    elif kernel == stride:  # no overlap: every input voxel meets one output (or makes k^3)
        pairs = n_out if module.transposed else n_in
    else:
        raise NotImplementedError(f'pair count of {type(module).__name__} with kernel {kernel} '
                                  f'stride {stride}')
    return 2 * pairs * module.in_channels * module.out_channels


@contextlib.contextmanager
def count_sparse_flops(model, backward: bool):
    """Add up the FLOPs of every spconv convolution of ``model`` called inside:
    ``totals[name]``, backward included (twice the forward) for trainable layers when
    ``backward``."""
    totals = defaultdict(int)
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, SparseConvolution):
            def hook(mod, inp, out, name=name):
                f = sparse_conv_flops(mod, inp, out)
                trains = backward and torch.is_grad_enabled() and mod.weight.requires_grad
                totals[name] += 3 * f if trains else f
            hooks.append(m.register_forward_hook(hook))
    try:
        yield totals
    finally:
        for h in hooks:
            h.remove()


# ---------------------------------------------------------------- memory
@contextlib.contextmanager
def saved_activations(model):
    """Record the tensors autograd saves for backward: ``{storage ptr: bytes}``, the
    model's parameters (and their casts' sources) left out."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(t):
        if t.device.type != 'meta' and t.numel():
            s = t.untyped_storage()
            ptr = s.data_ptr()
            if ptr not in params:
                saved[ptr] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield saved


# ---------------------------------------------------------------- inputs
def make_window(grid, num_frames: int, num_past: int, batch: int, source: str):
    """``occ (B, T, X, Y, Z) uint8`` and ``traj (B, T, 3) float32`` at ``grid``."""
    from occwm.geometry import trajectory_in_frame
    from occwm.synthetic.scenes import generate_scene
    occ, poses, _ = generate_scene(0, num_frames=max(num_frames, 2), grid=grid)
    occ = torch.from_numpy(occ[:num_frames])
    traj = torch.from_numpy(trajectory_in_frame(poses, max(num_past - 1, 0))).float()[:num_frames]
    if source == 'occ3d':
        from occwm.io import load_labels, shared_data_dir
        import glob
        import os
        files = glob.glob(os.path.join(shared_data_dir(), 'occ3d_sample', '*', 'labels.npz'))
        if not files:
            raise SetupError('--input occ3d: no ../shared/data/occ3d_sample/*/labels.npz')
        real = torch.from_numpy(load_labels(files[0])['semantics'])
        if tuple(real.shape) != tuple(grid.shape):
            raise SetupError(f'--input occ3d needs the Occ3D grid, the config has {grid.shape}')
        occ = real[None].repeat(num_frames, 1, 1, 1)
    return occ[None].repeat(batch, 1, 1, 1, 1), traj[None].repeat(batch, 1, 1)


# ---------------------------------------------------------------- measurement
PART_METHODS = ('forward', 'encode', 'decode', 'loss', 'encode_context', 'forward_future',
                'features', 'column_logits')


@contextlib.contextmanager
def part_flops(model):
    """Forward FLOPs of each direct child of ``model`` (tokenizer, dit, residual, ...),
    counted by a ``FlopCounterMode`` opened around the outermost call of its methods
    (``PART_METHODS``); ``totals[name]``. Backward passes run outside these calls."""
    totals = defaultdict(int)
    patched = []
    for name, child in model.named_children():
        depth = [0]
        for meth in PART_METHODS:
            fn = getattr(child, meth, None)
            if not callable(fn):
                continue

            def wrapper(*a, _fn=fn, _name=name, _depth=depth, **kw):
                if _depth[0]:
                    return _fn(*a, **kw)
                _depth[0] += 1
                fc = FlopCounterMode(display=False)
                try:
                    with fc:
                        return _fn(*a, **kw)
                finally:
                    _depth[0] -= 1
                    totals[_name] += fc.get_total_flops()
            setattr(child, meth, wrapper)
            patched.append((child, meth))
    try:
        yield totals
    finally:
        for child, meth in patched:
            delattr(child, meth)  # the class's method again


def _sparse_parts(sp: dict) -> dict:
    """Sparse-conv FLOPs of ``count_sparse_flops`` summed per direct child."""
    out = defaultdict(int)
    for name, f in sp.items():
        out[name.split('.')[0]] += f
    return out


def measure_step(model, occ, traj, autocast):
    """One training step (loss forward + backward): total FLOPs, forward FLOPs per part,
    saved bytes, seconds."""
    from occwm.models.forecaster import OccForecaster
    is_fc = isinstance(model, OccForecaster)
    extra = {}
    keys = None
    if is_fc:  # the steady state: latents from the cache, filled outside the count
        B, T = occ.shape[:2]
        keys = [('stats', b, t) for b in range(B) for t in range(T)]
        with FlopCounterMode(display=False) as fc, count_sparse_flops(model, False) as sp:
            model.encode_cached(occ, keys)
        extra['tokenizer encode (first epoch only)'] = fc.get_total_flops() + sum(sp.values())
    model.train()
    t0 = time.perf_counter()
    with FlopCounterMode(display=False) as fc, count_sparse_flops(model, True) as sp, \
            count_sparse_flops(model, False) as sp_fwd, part_flops(model) as parts:
        with autocast, saved_activations(model) as saved:
            losses = model.loss(occ, traj, keys) if is_fc else model.loss(occ.flatten(0, 1))
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        loss.backward()
    seconds = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    parts = dict(parts)
    for k, f in _sparse_parts(sp_fwd).items():
        parts[k] = parts.get(k, 0) + f
    return dict(total=fc.get_total_flops() + sum(sp.values()), parts=parts,
                saved=sum(saved.values()), seconds=seconds, extra=extra, loss=float(loss.detach()))


def measure_forecast(model, occ, traj, autocast):
    """FLOPs per part and seconds of one forecast (forecaster) or reconstruction
    (tokenizer) at batch 1."""
    from occwm.models.forecaster import OccForecaster
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad(), autocast, FlopCounterMode(display=False) as fc, \
            count_sparse_flops(model, False) as sp, part_flops(model) as parts:
        if isinstance(model, OccForecaster):
            model.forecast(occ[:1, :model.num_past], traj[:1],
                           generator=torch.Generator().manual_seed(0))
        else:
            model.decode(model.encode(occ[:1, 0])[0])
    seconds = time.perf_counter() - t0
    parts = dict(parts)
    for k, f in _sparse_parts(sp).items():
        parts[k] = parts.get(k, 0) + f
    return dict(total=fc.get_total_flops() + sum(sp.values()), parts=parts, seconds=seconds)


def fmt_flops(f: float) -> str:
    for unit, scale in (('PFLOP', 1e15), ('TFLOP', 1e12), ('GFLOP', 1e9), ('MFLOP', 1e6)):
        if f >= scale:
            return f'{f / scale:.2f} {unit}'
    return f'{f:.0f} FLOP'


def fmt_bytes(b: float) -> str:
    for unit, scale in (('GiB', 2 ** 30), ('MiB', 2 ** 20), ('KiB', 2 ** 10)):
        if b >= scale:
            return f'{b / scale:.2f} {unit}'
    return f'{b:.0f} B'


def main(argv=None):
    args = parse_args(argv)
    from occwm.engine.checks import load_config
    from occwm.grid import DEFAULT_GRID, OccGrid
    from occwm.registry import MODELS
    try:
        cfg = load_config(args.config)
    except SetupError as e:
        raise SystemExit(f'error: {e}')
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope('occwm')
    import occwm.models  # noqa: F401
    model_cfg = dict(cfg.model)
    if 'tokenizer_ckpt' in model_cfg:
        model_cfg['tokenizer_ckpt'] = None  # random weights: sizes and costs only
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    grid = getattr(model, 'grid', None) or (OccGrid(**cfg.grid) if 'grid' in cfg else DEFAULT_GRID)
    per_gpu = args.batch or cfg.train_dataloader.batch_size
    mb = args.measure_batch
    is_fc = hasattr(model, 'num_future')
    T = model.num_past + model.num_future if is_fc else 1
    P = model.num_past if is_fc else 1
    try:
        occ, traj = make_window(grid, T, P, mb, args.input)
    except SetupError as e:
        raise SystemExit(f'error: {e}')
    autocast = torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.dtype == 'bfloat16')

    n_all = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    children = {n: sum(p.numel() for p in m.parameters()) for n, m in model.named_children()}
    print(f'{args.config}: {type(model).__name__}, grid {tuple(grid.shape)}, '
          f'non-free {100 * float((occ != grid.free_label).float().mean()):.1f} % '
          f'({args.input} input), measured at batch {mb} on the CPU, autocast {args.dtype}')
    print('| quantity | value |')
    print('|---|---|')
    print(f'| parameters | {n_all / 1e6:.2f} M ({n_train / 1e6:.2f} M trained) |')
    for n, c in children.items():
        if c:
            print(f'| - {n} | {c / 1e6:.2f} M |')

    print(f'(measuring one training step at batch {mb} ...)', flush=True)
    step = measure_step(model, occ, traj, autocast)
    scale = per_gpu / mb
    print(f'| FLOPs per training step, batch {per_gpu} (fwd + bwd) | {fmt_flops(step["total"] * scale)} |')
    for n, f in sorted(step['parts'].items(), key=lambda kv: -kv[1]):
        print(f'| - {n}, forward | {fmt_flops(f * scale)} |')
    for n, f in step['extra'].items():
        print(f'| - {n} | {fmt_flops(f * scale)} |')
    print(f'| activation memory, batch {per_gpu} ({args.dtype}) | {fmt_bytes(step["saved"] * scale)} '
          f'({fmt_bytes(step["saved"] / mb)} per sample) |')
    adam = n_train * 4 * 3 + n_all * 4  # fp32 weights + grads + 2 Adam moments
    print(f'| weights + grads + AdamW state (fp32) | {fmt_bytes(adam)} |')
    if not args.skip_forecast:
        print('(measuring one forecast at batch 1 ...)', flush=True)
        fc = measure_forecast(model, occ, traj, autocast)
        what = 'forecast (batch 1)' if is_fc else 'reconstruction of one frame'
        print(f'| FLOPs per {what} | {fmt_flops(fc["total"])} |')
        for n, f in sorted(fc['parts'].items(), key=lambda kv: -kv[1]):
            print(f'| - {n} | {fmt_flops(f)} |')

    if is_fc:  # the CPU part of every step and forecast: agent tracking + warp (numpy)
        t0 = time.perf_counter()
        model.warp_present(occ[:1, :P], traj[:1])
        cpu_ms = 1e3 * (time.perf_counter() - t0)
        print(f'| CPU per window: agent tracking + warp of the present (numpy) | {cpu_ms:.0f} ms |')

    # The budget.
    rate = args.tflops * 1e12
    iters = cfg.get('train_cfg', {}).get('max_iters') or cfg.get('max_iters')
    samples = OCC3D_WINDOWS if is_fc else OCC3D_FRAMES
    per_iter = step['total'] * scale * args.gpus
    print(f'budget at {args.tflops:.0f} TFLOP/s sustained per GPU, {args.gpus} GPUs x batch '
          f'{per_gpu} = {args.gpus * per_gpu} per step:')
    if iters:
        hours = per_iter * iters / (rate * args.gpus) / 3600
        epochs = iters * args.gpus * per_gpu / samples
        print(f'  training: {iters} steps = {epochs:.0f} epochs of Occ3D-nuScenes '
              f'({samples} {"windows" if is_fc else "frames"}), compute {hours:.1f} h')
    if not args.skip_forecast and is_fc:
        s = fc['total'] / rate
        print(f'  forecast at batch 1, compute-bound: {1e3 * s:.1f} ms = '
              f'{model.num_future / s:.0f} frames/s')
    peers = ', '.join(f'{k} {v / 1e6:.0f} M' for k, v in PEERS.items())
    print(f'  peers (published parameters): {peers}')
    print(f'measured CPU step {step["seconds"]:.1f} s (loss {step["loss"]:.3f})')


if __name__ == '__main__':
    main()
