import os

import numpy as np
import pytest

from occwm.infos.fields import add_trajectories, make_frame_info
from occwm.infos.layouts import load_scene_infos
from occwm.io import load_labels, save_labels, save_pickle
from occwm.grid import DEFAULT_GRID


def test_labels_roundtrip_and_errors(tmp_path):
    occ = np.full(DEFAULT_GRID.shape, 17, np.uint8)
    occ[100, 100, 2] = 11
    path = str(tmp_path / 'gts' / 's' / 't' / 'labels.npz')
    save_labels(path, occ)
    out = load_labels(path, keys=('semantics', 'mask_lidar', 'mask_camera'))
    assert np.array_equal(out['semantics'], occ) and out['mask_lidar'].all()
    with pytest.raises(FileNotFoundError, match='nothere'):
        load_labels(str(tmp_path / 'nothere.npz'))
    np.savez(str(tmp_path / 'bad.npz'), occupancy=occ)
    with pytest.raises(ValueError, match="bad.npz: missing key 'semantics'"):
        load_labels(str(tmp_path / 'bad.npz'))


def test_failed_write_keeps_old_file(tmp_path):
    path = str(tmp_path / 'labels.npz')
    occ = np.full(DEFAULT_GRID.shape, 17, np.uint8)
    save_labels(path, occ)
    before = open(path, 'rb').read()
    with pytest.raises(ValueError):
        save_labels(path, np.full(DEFAULT_GRID.shape, 30, np.uint8))
    assert open(path, 'rb').read() == before
    assert [f for f in os.listdir(tmp_path) if f.startswith('.tmp_')] == []


def test_trajectory_fields_follow_uniad_convention():
    frames = [make_frame_info('s', f't{k}', k * 500_000, (2.0 * k, 0.0, 0.0), (1, 0, 0, 0))
              for k in range(8)]
    add_trajectories(frames)
    f = frames[1]
    np.testing.assert_allclose(f['gt_ego_fut_trajs'], [[2, 0]] * 6)  # per-step displacements
    np.testing.assert_allclose(f['ego_fut_traj'][:, 0], [2, 4, 6, 8, 10, 12])
    np.testing.assert_allclose(f['gt_ego_fut_masks'], 1)
    last = frames[5]
    np.testing.assert_allclose(last['gt_ego_fut_masks'], [1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(last['gt_ego_his_trajs'], [[2, 0], [2, 0]])
    np.testing.assert_allclose(frames[0]['gt_ego_his_trajs'], 0)


def test_flat_infos_without_keys_named(tmp_path):
    # a flat list is read as the mmdet3d-0.x / UniAD layout; its frames need poses
    path = str(tmp_path / 'flat.pkl')
    save_pickle(path, dict(infos=[{'token': 'a'}]))
    with pytest.raises(ValueError, match=r"flat.pkl: infos\[0\]: missing required key.*'timestamp'"):
        load_scene_infos(path)


def _write_npz(path, **arrays):
    np.savez(str(path), **arrays)
    return str(path)


@pytest.mark.parametrize('case, error, pattern', [
    ('missing_file', FileNotFoundError, 'occupancy file not found: .*case.npz'),
    ('missing_key', ValueError, "case.npz: missing key 'semantics'"),
    ('wrong_shape', ValueError, r'case.npz\[semantics\]: shape \(200, 200, 8\)'),
    ('wrong_dtype', ValueError, r'case.npz\[semantics\]: dtype float32 is not an integer'),
    ('out_of_range', ValueError, r'case.npz\[semantics\]: label 18 out of range 0..17'),
    ('unreadable', ValueError, 'case.npz: not a readable npz'),
    ('mask_shape', ValueError, 'case.npz: mask_lidar shape'),
])
def test_labels_bad_input_names_file(tmp_path, case, error, pattern):
    path = tmp_path / 'case.npz'
    free = np.full(DEFAULT_GRID.shape, 17, np.uint8)
    if case == 'missing_key':
        _write_npz(path, occupancy=free)
    elif case == 'wrong_shape':
        _write_npz(path, semantics=free[:, :, :8])
    elif case == 'wrong_dtype':
        _write_npz(path, semantics=free.astype(np.float32))
    elif case == 'out_of_range':
        bad = free.copy()
        bad[1, 2, 3] = 18
        _write_npz(path, semantics=bad)
    elif case == 'unreadable':
        path.write_bytes(b'PK\x03\x04 this is not a zip archive')
    elif case == 'mask_shape':
        _write_npz(path, semantics=free, mask_lidar=free[:100])
    with pytest.raises(error, match=pattern):
        load_labels(str(path), keys=('semantics', 'mask_lidar'))


def test_atomic_path_gives_the_usual_file_mode(tmp_path):
    import os
    from occwm.io import atomic_path
    umask = os.umask(0o022)
    try:
        with atomic_path(str(tmp_path / 'a.txt')) as tmp:
            open(tmp, 'w').write('x')
    finally:
        os.umask(umask)
    assert (tmp_path / 'a.txt').stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------- damaged files, output folders
@pytest.mark.parametrize('compressed', [True, False])
def test_a_damaged_zip_member_is_one_line_naming_the_file(tmp_path, compressed):
    """A member failing its CRC check: np.load alone raises BadZipFile without the path."""
    import zipfile

    from occwm.io import DataFileError, npz_keys, read_npz
    from occwm.runtime import SetupError
    from tests.helpers import corrupt_zip_member
    path = str(tmp_path / 'labels.npz')
    occ = np.full(DEFAULT_GRID.shape, 17, np.uint8)
    occ[::7, ::3, 2] = 11
    (np.savez_compressed if compressed else np.savez)(path, semantics=occ, mask_lidar=occ)
    corrupt_zip_member(path)
    with pytest.raises(zipfile.BadZipFile):
        np.load(path)['semantics']
    for read in (lambda: load_labels(path), lambda: read_npz(path)):
        with pytest.raises(DataFileError) as e:
            read()
        assert str(e.value).startswith(f'{path}: semantics: damaged archive member (')
        assert 'the file is corrupt' in str(e.value) and '\n' not in str(e.value)
        assert isinstance(e.value, ValueError) and isinstance(e.value, SetupError)
    assert npz_keys(path) == ['semantics', 'mask_lidar']           # the directory is intact
    assert read_npz(path, ('mask_lidar',))['mask_lidar'].shape == DEFAULT_GRID.shape


def test_read_npz_faults(tmp_path):
    from occwm.io import DataFileError, npz_keys, read_npz
    with pytest.raises(FileNotFoundError, match='nothere.npz: no such file'):
        read_npz(str(tmp_path / 'nothere.npz'))
    np.save(str(tmp_path / 'one.npy'), np.zeros(3))
    with pytest.raises(DataFileError, match=r'one.npy: a single .npy array'):
        read_npz(str(tmp_path / 'one.npy'))
    with pytest.raises(DataFileError, match=r'one.npy: not a readable npz'):
        npz_keys(str(tmp_path / 'one.npy'))
    np.savez(str(tmp_path / 'obj.npz'), a=np.array([{'x': 1}], dtype=object))
    with pytest.raises(DataFileError, match=r"obj.npz: a: an object array, which cannot be "
                                            r"read without pickle"):
        read_npz(str(tmp_path / 'obj.npz'))
    with pytest.raises(DataFileError, match=r"obj.npz: missing key 'b' \(has \['a'\]\); want x"):
        read_npz(str(tmp_path / 'obj.npz'), ('b',), hint='want x')


def test_data_file_error_from_a_dataloader_worker_stays_one_line():
    """torch's DataLoader re-raises a worker's exception with the worker's traceback in
    the message; the tool still prints the one line."""
    from occwm.io import DataFileError
    wrapped = ('Caught DataFileError in DataLoader worker process 0.\nOriginal Traceback '
               '(most recent call last):\n  File "x.py", line 1, in f\noccwm.io.DataFileError: '
               '/d/labels.npz: semantics: damaged archive member (BadZipFile: Bad CRC-32)\n')
    assert str(DataFileError(wrapped)) == ('/d/labels.npz: semantics: damaged archive member '
                                           '(BadZipFile: Bad CRC-32)')


def test_check_writable(tmp_path, monkeypatch):
    from occwm import io
    from occwm.runtime import SetupError
    io.check_writable(str(tmp_path / 'new' / 'deep'))              # created
    assert os.path.isdir(tmp_path / 'new' / 'deep') and not os.listdir(tmp_path / 'new' / 'deep')
    (tmp_path / 'file').write_text('x')
    with pytest.raises(SetupError, match=r'cannot write to the output folder .*file/sub '
                                         r'\(--out\): Not a directory'):
        io.check_writable(str(tmp_path / 'file' / 'sub'))

    def denied(folder):
        raise PermissionError(13, 'Permission denied')
    monkeypatch.setattr(io, '_probe_write', denied)                # as a read-only folder
    with pytest.raises(SetupError, match=rf'^cannot write to the output folder {tmp_path} '
                                         r'\(OUT_DIR\): Permission denied; choose another'):
        io.check_writable(str(tmp_path), 'OUT_DIR')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_check_writable_read_only_folder(tmp_path):
    from occwm.io import check_writable
    from occwm.runtime import SetupError
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out').chmod(0o555)
    try:
        with pytest.raises(SetupError, match=r'out \(--out\): Permission denied'):
            check_writable(str(tmp_path / 'out'))
    finally:
        (tmp_path / 'out').chmod(0o755)


def test_lock_output_dir_against_another_process(tmp_path):
    import subprocess
    import sys

    from occwm.io import LOCK_NAME, lock_output_dir
    from occwm.runtime import SetupError
    out = str(tmp_path / 'out')
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time\nfrom occwm.io import lock_output_dir\n'
         f'lock_output_dir({out!r})\nprint("held", flush=True)\ntime.sleep(60)'],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(SetupError) as e:
            lock_output_dir(out)
        assert str(e.value).startswith(f'{out} (--out) is in use by another process (process '
                                       f'{holder.pid} since ')
        assert 'wait for it to finish or choose another output folder' in str(e.value)
    finally:
        holder.kill()
        holder.wait()
    lock = lock_output_dir(out)                                     # a dead holder: free
    assert lock_output_dir(out) is lock                             # the same process: same lock
    assert f'process {os.getpid()} since' in open(os.path.join(out, LOCK_NAME)).read()
    lock.release()


def test_refuse_overwrite(tmp_path):
    from occwm.io import refuse_overwrite
    from occwm.runtime import SetupError
    a, b = tmp_path / 'a.json', tmp_path / 'b.json'
    refuse_overwrite([str(a), str(b)], overwrite=False)            # nothing there
    a.write_text('{}')
    b.write_text('{}')
    with pytest.raises(SetupError, match=rf'^{a} and 1 more already exist: pass --overwrite '
                                         r'to replace the forecasts, or choose another'):
        refuse_overwrite([str(a), str(b)], overwrite=False, what='forecasts')
    refuse_overwrite([str(a)], overwrite=True)
