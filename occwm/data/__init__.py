"""The training data path: the forecast-window dataset, its transforms (loading,
augmentation, packing) and the sparse occupancy cache."""
from occwm.data.augment import RandomFlipRotateOcc
from occwm.data.occ_cache import OccCache
from occwm.data.occ_dataset import OccForecastDataset
from occwm.data.transforms import LoadOccWindow, PackOccInputs, occ_collate

__all__ = ['OccForecastDataset', 'LoadOccWindow', 'PackOccInputs', 'occ_collate',
           'RandomFlipRotateOcc', 'OccCache']
