"""Networks and mmengine models: the sparse tokenizer and the trajectory-conditioned DiT forecaster."""
from occwm.models.forecaster import OccForecaster
from occwm.models.tokenizer import TOKENIZER_PRESETS, OccVAE, build_tokenizer

__all__ = ['OccVAE', 'OccForecaster', 'TOKENIZER_PRESETS', 'build_tokenizer']
