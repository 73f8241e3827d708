"""Info pkl fields (occwm.infos.fields): the one token hash of frames without a token.
Tokens already written (the gts/<scene>/<token> folders of the frame format and of the
synthetic scenes) must not change: the values below were written before the two
readers shared hashed_token."""
from occwm.infos.fields import hashed_token
from occwm.occupancy.frames import frame_token
from occwm.synthetic.scenes import SYNTHETIC_VERSION, synthetic_token


def test_hashed_token_hand_checked():
    # the parts joined by '/' after str(): sha1(b'a/1/b') = 49025f9b07fc1f84f0b3a967...
    assert hashed_token('a', 1, 'b') == hashed_token('a/1/b') == '49025f9b07fc1f84f0b3a9676bea2162'


def test_frame_format_tokens_unchanged():
    assert frame_token('nuscenes_seq11', 0) == '08a560eaee5fe4b2a9620160c062224f'
    assert frame_token('tiny', 7) == '78eb2f76ba2b5d02cd375ac92b4f0b89'
    assert frame_token('tiny', 7) == hashed_token('occwm-frames-1', 'tiny', 7)


def test_synthetic_tokens_unchanged():
    assert synthetic_token('synthetic-0000', 0, 123) == '01a75e8dd5857ac94e3b998218c44e67'
    assert synthetic_token('synthetic-0003', 19, 2 ** 40) == 'e7fe69a0c4c7115c3c9d0a2d1c470b8c'
    assert synthetic_token('synthetic-0003', 19, 2 ** 40) == \
        hashed_token(SYNTHETIC_VERSION, 'synthetic-0003', 2 ** 40, 19)
