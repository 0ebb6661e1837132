"""Top-down pictures of mazes (no display needed)."""

from __future__ import annotations

import numpy as np

from spin_data.envs.maze.config import MazeConfig, in_box_batch


def draw(cfg: MazeConfig, positions: np.ndarray, size: int = 200) -> np.ndarray:
    """Pictures (uint8 ``(P, size, size, 3)``) of the maze with the agent at each position."""
    centres = (np.arange(size) + 0.5) / size
    gx, gy = np.meshgrid(centres, centres[::-1])  # row 0 is the top (y = 1)
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    for region in cfg.regions:
        colour = (60, 180, 75) if region.terminal else (
            (70, 130, 230) if region.reward > 0 else (230, 80, 80) if region.reward < 0
            else (200, 200, 200))
        image[in_box_batch(region.box, gx, gy)] = colour
    for wall in cfg.walls:
        image[in_box_batch(wall, gx, gy)] = (30, 30, 30)
    frames = np.repeat(image[None], len(positions), axis=0)
    for frame, (x, y) in zip(frames, positions):
        frame[(gx - x) ** 2 + (gy - y) ** 2 <= 0.015**2] = (240, 130, 0)
    return frames
