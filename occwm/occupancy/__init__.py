"""Ground-truth occupancy from real LiDAR: the builder, visibility masks (mask_lidar,
mask_camera), densification, build reports and the nuScenes-root reader."""
