"""Model folders by Hugging Face Hub id: ``init_generator('org/name')`` resolves the id through
``huggingface_hub``'s cache (the library does the downloading; mmspectral has no hub client of its own).

Nothing is fetched unless a hub id is named. ``HF_HUB_OFFLINE=1`` (or ``local_files_only=True``) uses the
cache alone; ``revision`` picks a branch, tag or commit; ``HF_HOME`` / ``HF_HUB_CACHE`` say where the cache
is.
"""
from typing import Optional

from mmspectral.cli import is_hub_id  # 'org/name' as the hub spells ids; no local file or folder of that name

__all__ = ['is_hub_id', 'resolve_hub_id', 'HubModelError']


class HubModelError(FileNotFoundError):
    """A hub id that neither the cache nor the network could give (the message says which and what to do)."""


def resolve_hub_id(repo_id: str, revision: Optional[str] = None, local_files_only: bool = False) -> str:
    """The local folder of model repository ``repo_id`` at ``revision``: from the cache, else downloaded
    (unless offline). Raises :class:`HubModelError` with what was tried."""
    import huggingface_hub
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)
    offline = local_files_only or constants.HF_HUB_OFFLINE
    where = (f'{repo_id!r} is no local file or folder, so it was read as a hub id: {repo_id}'
             + (f' (revision {revision})' if revision else ''))
    try:
        return snapshot_download(repo_id, revision=revision, local_files_only=offline,
                                 library_name='mmspectral')
    except LocalEntryNotFoundError:
        how = ('offline mode is on (HF_HUB_OFFLINE=1 or local_files_only=True)' if offline else
               'the hub could not be reached')
        raise HubModelError(f'{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {how}. '
                            'Download it where the hub is reachable (huggingface-cli download '
                            f'{repo_id}), or pass the path of a model folder.') from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise HubModelError(f'{where}: no such model repository on the hub, or it needs a login '
                            '(huggingface-cli login). Check the id, or pass a model folder.') from None
    except RevisionNotFoundError:
        raise HubModelError(f'{where}: the repository has no such revision (branch, tag or '
                            'commit).') from None
    except (HfHubHTTPError, OSError) as exc:
        raise HubModelError(f'{where}: the hub could not be reached ({type(exc).__name__}: {exc}); with '
                            f'huggingface_hub {huggingface_hub.__version__}. Try again, or set '
                            'HF_HUB_OFFLINE=1 to use the cache alone.') from None
