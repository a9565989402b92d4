"""Reading and writing files safely: weights and checkpoints (what may be unpickled, torn files),
state dicts loaded with every name and shape checked, atomic writes.

The lowest layer of mmspectral beside ``registry``: it imports nothing else of the package, so models, evaluation
and tools read weights through it without loading the engine.
"""
from .atomic import TMP_SUFFIX, atomic_write, atomic_write_path, write_json
from .state_dict import (SAME_ARCHITECTURE, StateDictDiff, diff_state_dict, load_state_dict_checked,
                         read_state_dict)
from .weights import CheckpointLoadError, checkpoint_defect, load_torch_file, trusted_checkpoints

__all__ = ['atomic_write', 'atomic_write_path', 'write_json', 'TMP_SUFFIX', 'load_torch_file',
           'trusted_checkpoints', 'CheckpointLoadError', 'checkpoint_defect', 'StateDictDiff', 'diff_state_dict',
           'read_state_dict', 'load_state_dict_checked', 'SAME_ARCHITECTURE']
