"""Reading and writing files safely: weights and checkpoints (nothing is unpickled unless the user names the
file; torn and foreign files), state dicts loaded with every name and shape checked, checkpoints as plain
containers, atomic writes.

The lowest layer of mmspectral beside ``registry``: it imports nothing else of the package, so models,
evaluation and tools read weights through it without loading the engine.
"""
from .atomic import TMP_SUFFIX, atomic_write, atomic_write_path, write_json, write_report
from .pickle_scan import PickleImport, scan_imports, sniff
from .plain import from_plain, to_plain
from .provenance import PROVENANCE_FILE, ProvenanceError, claim_folder, file_identity
from .safetensors_io import (SafetensorsError, load_safetensors, read_safetensors_shapes, save_safetensors,
                             sha256_of_file)
from .state_dict import (SAME_ARCHITECTURE, StateDictDiff, diff_state_dict, load_state_dict_checked,
                         read_state_dict)
from .token_folder import (TOKEN_FOLDER_META, read_token_meta, shard_paths, token_class_names,
                           token_meta_problems, write_token_meta)
from .weights import CheckpointLoadError, checkpoint_defect, is_trusted, load_torch_file, trust_files

__all__ = ['atomic_write', 'atomic_write_path', 'write_json', 'write_report', 'TMP_SUFFIX', 'load_torch_file',
           'trust_files',
           'is_trusted', 'CheckpointLoadError', 'checkpoint_defect', 'StateDictDiff', 'diff_state_dict',
           'read_state_dict', 'load_state_dict_checked', 'SAME_ARCHITECTURE', 'to_plain', 'from_plain',
           'PROVENANCE_FILE', 'ProvenanceError', 'claim_folder', 'file_identity', 'save_safetensors',
           'load_safetensors', 'read_safetensors_shapes', 'sha256_of_file', 'SafetensorsError', 'sniff',
           'scan_imports', 'PickleImport', 'TOKEN_FOLDER_META', 'read_token_meta', 'write_token_meta',
           'shard_paths', 'token_meta_problems', 'token_class_names']
