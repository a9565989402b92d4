"""The web demo in a real browser: demo/app.py serves model folders on 127.0.0.1, headless Chromium
(Debian's chromium and chromedriver, through Selenium) clicks Generate, waits until all tokens have arrived,
and the page must show a decoded image that is not blank. The screenshot is kept
(work_dirs/test_artifacts/demo.png).

tools/run_tests.sh pip-installs Gradio and Selenium when missing; Chromium and chromedriver are system
packages it installs only when asked (MMSPECTRAL_INSTALL_BROWSER=1, as CI does), so without them the test
skips and says how to get them. MMSPECTRAL_CHROMIUM / MMSPECTRAL_CHROMEDRIVER say where they are (default
/usr/bin/). The set-up sets MMSPECTRAL_REQUIRE_BROWSER=1 when all is there, under which a missing
piece fails the test instead of skipping it."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOKENIZER = 'configs/spectralar/spectralar-tiny_16tok_1xb32-5k_shapes-64.py'
GENERATOR = 'configs/spectralar/spectralar-tiny-d4_16tok_1xb64-3k_shapes-64.py'
# the canvas statistics of the <img> the page shows: (width, mean grey, std of grey)
PIXEL_STATS = '''const img = arguments[0]; const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d'); g.drawImage(img, 0, 0);
const p = g.getImageData(0, 0, c.width, c.height).data; let s = 0, s2 = 0, n = 0;
for (let i = 0; i < p.length; i += 4) {
  const v = (p[i] + p[i + 1] + p[i + 2]) / 3; s += v; s2 += v * v; n++;
}
const m = s / n; return [c.width, m, Math.sqrt(Math.max(s2 / n - m * m, 0))];'''


def browser_paths() -> tuple:
    """(chromium, chromedriver): where tools/setup_demo.sh looks for them too."""
    return (os.environ.get('MMSPECTRAL_CHROMIUM') or '/usr/bin/chromium',
            os.environ.get('MMSPECTRAL_CHROMEDRIVER') or '/usr/bin/chromedriver')


def need_browser():
    """Skip (or, under MMSPECTRAL_REQUIRE_BROWSER=1, fail) naming what is missing and how to install it."""
    python = [name for name in ('gradio', 'selenium') if not _importable(name)]
    system = [path for path in browser_paths() if not os.access(path, os.X_OK)]
    how = []
    if python:
        how.append(f'{python}: pip install -r requirements/demo.txt (bash tools/run_tests.sh does it)')
    if system:
        how.append(f'{system}: MMSPECTRAL_INSTALL_BROWSER=1 bash tools/run_tests.sh (as root, installs them '
                   'with apt-get) or apt-get install chromium chromium-driver; MMSPECTRAL_CHROMIUM / '
                   'MMSPECTRAL_CHROMEDRIVER if they are elsewhere')
    if how:
        message = 'the browser test needs ' + '; '.join(how)
        if os.environ.get('MMSPECTRAL_REQUIRE_BROWSER') == '1':
            pytest.fail(message)
        pytest.skip(message)


def _importable(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False


@pytest.fixture(scope='module')
def model_folders(tmp_path_factory):
    """The quick start's two model folders, with random weights."""
    from mmspectral.apis import init_generator, init_tokenizer, load_config, save_pretrained
    from mmspectral.registry import MODELS
    work = tmp_path_factory.mktemp('demo')
    torch.manual_seed(0)
    tok_ckpt = str(work / 'tokenizer.pth')
    torch.save(dict(state_dict=MODELS.build(load_config(osp.join(REPO_ROOT, TOKENIZER)).model).state_dict()),
               tok_ckpt)
    options = {'model.tokenizer_checkpoint': tok_ckpt}
    gen_ckpt = str(work / 'generator.pth')
    torch.save(dict(state_dict=MODELS.build(load_config(osp.join(REPO_ROOT, GENERATOR), options).model)
                    .state_dict()), gen_ckpt)
    generator = init_generator(osp.join(REPO_ROOT, GENERATOR), gen_ckpt, cfg_options=options)
    generator.class_names = ('disk', 'ring', 'hbar', 'vbar', 'square', 'triangle', 'pair', 'cross', 'plus',
                             'quad')
    save_pretrained(generator, str(work / 'models' / 'generator'))
    tokenizer = init_tokenizer(osp.join(REPO_ROOT, TOKENIZER), tok_ckpt)
    save_pretrained(tokenizer, str(work / 'models' / 'tokenizer'))
    return str(work / 'models')


def test_demo_says_how_to_make_missing_models(tmp_path, subprocess_env):
    if not _importable('gradio'):
        need_browser()
    proc = subprocess.run([sys.executable, 'demo/app.py', '--models', str(tmp_path)], cwd=REPO_ROOT,
                          env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'bash tools/quickstart.sh' in proc.stderr, proc.stderr[-2000:]


def test_missing_browser_skips_naming_the_opt_in(tmp_path, monkeypatch):
    monkeypatch.setenv('MMSPECTRAL_CHROMIUM', str(tmp_path / 'no-chromium'))
    monkeypatch.delenv('MMSPECTRAL_REQUIRE_BROWSER', raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        need_browser()
    message = str(info.value)
    assert 'no-chromium' in message and 'MMSPECTRAL_INSTALL_BROWSER=1 bash tools/run_tests.sh' in message
    assert 'apt-get install chromium chromium-driver' in message
    monkeypatch.setenv('MMSPECTRAL_REQUIRE_BROWSER', '1')  # asked for: a missing browser fails the test
    with pytest.raises(pytest.fail.Exception, match='MMSPECTRAL_INSTALL_BROWSER=1'):
        need_browser()


@pytest.mark.slow
def test_demo_generates_a_sample_in_a_real_browser(model_folders, subprocess_env, free_port, tmp_path):
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url = f'http://127.0.0.1:{free_port}/'
    command = [sys.executable, 'demo/app.py', '--models', model_folders, '--port', str(free_port)]
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=subprocess_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        deadline = time.time() + 120
        while True:  # until the page is served
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read()[-3000:]
            assert time.time() < deadline, 'the demo did not start within 120 s'
            time.sleep(0.5)
        options = Options()
        for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--window-size=1280,800'):
            options.add_argument(arg)
        chromium, chromedriver = browser_paths()
        options.binary_location = chromium
        driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        driver.get(url)
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#generate'))
        driver.find_element(By.CSS_SELECTOR, '#generate').click()

        def finished(d):
            status = d.find_elements(By.CSS_SELECTOR, '#status textarea')
            images = d.find_elements(By.CSS_SELECTOR, '#sample img')
            done = status and status[0].get_attribute('value') == '16 of 16 tokens'
            return images[0] if done and images and images[0].get_attribute('complete') == 'true' else None
        image = wait.until(finished)
        width, mean, std = driver.execute_script(PIXEL_STATS, image)
        assert width == 256  # the 64 px sample, enlarged
        assert std > 2.0 and 5 < mean < 250, (mean, std)  # a decoded image, not a blank one
        # every thumbnail of the image after each token loads (some used to stay broken)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '#steps img')) == 16)
        loaded = 'return arguments[0].complete && arguments[0].naturalWidth > 0'
        wait.until(lambda d: all(d.execute_script(loaded, img)
                                 for img in d.find_elements(By.CSS_SELECTOR, '#steps img')))
        # the page fits a laptop screen: nothing overflows sideways
        assert driver.execute_script('return document.documentElement.scrollWidth <= window.innerWidth + 1')
        clipped = driver.execute_script(  # nor do the thumbnails inside their gallery
            "return Array.from(document.querySelectorAll('#steps *')).filter(e => "
            "['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX) && "
            "e.scrollWidth > e.clientWidth + 1).map(e => e.className)")
        assert clipped == [], clipped
        shot = tmp_path / 'demo.png'
        assert driver.save_screenshot(str(shot))
        keep = osp.join(REPO_ROOT, 'work_dirs', 'test_artifacts')
        os.makedirs(keep, exist_ok=True)
        shutil.copy(shot, osp.join(keep, 'demo.png'))
        # an empty field is a message, not a traceback
        seed_box = driver.find_element(By.CSS_SELECTOR, '#seed input')
        seed_box.send_keys(Keys.CONTROL, 'a')  # as a user empties it (clear() sends no input event)
        seed_box.send_keys(Keys.BACKSPACE, Keys.TAB)
        driver.find_element(By.CSS_SELECTOR, '#generate').click()
        wait.until(lambda d: 'seed: enter a whole number' in d.find_element(By.TAG_NAME, 'body').text)
        assert 'TypeError' not in driver.find_element(By.TAG_NAME, 'body').text
        driver.find_element(By.XPATH, "//*[normalize-space(text())='sampling']").click()  # open the accordion
        for control in ('#cfg', '#cfg-schedule', '#temperature', '#top-k', '#top-p'):  # the sampling controls
            wait.until(lambda d, control=control: d.find_elements(By.CSS_SELECTOR, control))
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
