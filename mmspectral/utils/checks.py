"""Value checks that cost no host-device synchronisation on a GPU."""
import torch

__all__ = ['check_range']


def check_range(values: torch.Tensor, low, high, what: str, hint: str = '') -> None:
    """Raise ``ValueError('{what}, got [min, max].{hint}')`` unless every entry lies in ``[low, high]``.

    On the CPU the range is read and reported. On an accelerator reading it would stall the host until the
    device catches up (a synchronisation in every training step), so the check runs on the device instead
    (``torch._assert_async``): a violation then stops the device's work with ``what`` as the message.
    """
    if not values.numel():
        return
    if values.device.type != 'cpu':
        torch._assert_async(((values >= low) & (values <= high)).all(), f'{what}.{hint}')
        return
    lo, hi = values.min().item(), values.max().item()
    if lo < low or hi > high:
        raise ValueError(f'{what}, got [{lo}, {hi}].{hint}')
