import subprocess
import sys

import cv2

from mmspectral.datasets import render_shape


def test_visualize_spectral_writes_the_figure(tmp_path, repo_root, subprocess_env):
    image = tmp_path / 'star.png'
    cv2.imwrite(str(image), cv2.cvtColor(render_shape(0, 0, 6, 80), cv2.COLOR_RGB2BGR))
    out = tmp_path / 'fig.png'
    proc = subprocess.run([sys.executable, 'tools/analysis/visualize_spectral.py', '--image', str(image),
                           '--num-tokens', '16', '--image-size', '64', '--prefixes', '1', '4', '12', '16',
                           '--out', str(out)], cwd=repo_root, env=subprocess_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    fig = cv2.imread(str(out))
    assert fig is not None and fig.shape[0] > 300 and fig.shape[1] > 600
    # A schedule that cannot exist at this size is refused with the reason.
    proc = subprocess.run([sys.executable, 'tools/analysis/visualize_spectral.py', '--num-tokens', '32',
                           '--image-size', '64', '--out', str(tmp_path / 'no.png')], cwd=repo_root,
                          env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'cannot place num_tokens=32 at image_size=64' in proc.stderr
