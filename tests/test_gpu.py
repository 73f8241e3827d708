"""GPU checks (marked ``gpu``; skipped without CUDA): a bf16 training step and a
forecast of the default-size forecaster on the Occ3D grid. Needs the CUDA build of
spconv (e.g. ``pip install spconv-cu120``) on a GPU machine."""
import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')]


def test_bf16_train_step_and_forecast():
    from occwm.synthetic.scenes import generate_scene
    from occwm.geometry import trajectory_in_frame
    from occwm.models import OccForecaster
    occ, poses, _ = generate_scene(0, num_frames=11)
    occ = torch.from_numpy(occ)[None].cuda()  # (1, 11, 200, 200, 16)
    traj = torch.from_numpy(trajectory_in_frame(poses, 4)).float()[None].cuda()  # (1, 11, 3)
    model = OccForecaster(tokenizer=dict(type='OccVAE'), dit=dict(preset='S')).cuda()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        loss = model.loss(occ, traj)['loss_flow']
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
        pred = model.forecast(occ[:, :5], traj)
    assert pred.shape == (1, 6, 200, 200, 16) and pred.dtype == torch.uint8
