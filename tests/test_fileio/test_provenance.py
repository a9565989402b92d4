"""Output folders record what made them; a resumed run made differently is refused."""
import json

import pytest

from mmspectral.datasets import TokenDataset
from mmspectral.fileio import PROVENANCE_FILE, ProvenanceError, claim_folder, file_identity


def test_claim_folder_writes_then_checks_every_key(tmp_path):
    record = dict(checkpoint=dict(file='/a/ckpt.pth', size=3, sha256='aa'), seed=0, sampling=dict(top_k=5))
    claim_folder(str(tmp_path / 'out'), record, has_outputs=False, what='samples')
    assert json.load(open(tmp_path / 'out' / PROVENANCE_FILE)) == record
    # the same record again (the file named another way) resumes
    claim_folder(str(tmp_path / 'out'), dict(record, checkpoint=dict(record['checkpoint'], file='/b/x.pth')),
                 has_outputs=True, what='samples')
    for change, named in ((dict(seed=1), 'seed: 0 in the folder, 1 now'),
                          (dict(sampling=dict(top_k=6)), 'sampling.top_k: 5 in the folder, 6 now'),
                          (dict(checkpoint=dict(file='/a/ckpt.pth', size=3, sha256='bb')),
                           'checkpoint.sha256'),
                          (dict(extra=True), 'extra: null in the folder, true now')):
        with pytest.raises(ProvenanceError, match='made differently') as info:
            claim_folder(str(tmp_path / 'out'), dict(record, **change), has_outputs=True, what='samples')
        assert named in str(info.value) and 'another folder' in str(info.value)
    # outputs without a record cannot be vouched for; a rank that does not write only checks
    (tmp_path / 'old').mkdir()
    with pytest.raises(ProvenanceError, match='no provenance.json'):
        claim_folder(str(tmp_path / 'old'), record, has_outputs=True, what='tokens')
    claim_folder(str(tmp_path / 'new'), record, has_outputs=False, what='tokens', write=False)
    assert not (tmp_path / 'new').exists()


def test_generator_tokens_must_come_from_its_tokenizer(tmp_path):
    a, b = tmp_path / 'a.pth', tmp_path / 'b.pth'
    a.write_bytes(b'tokenizer a')
    b.write_bytes(b'tokenizer b')
    identity = file_identity(str(a))
    root = tmp_path / 'tokens'
    root.mkdir()
    json.dump(dict(complete=True, num_tokens=16, vocab_size=8, checkpoint=str(a),
                   checkpoint_size=identity['size'], checkpoint_sha256=identity['sha256']),
              open(root / 'meta.json', 'w'))
    ds = dict(type='TokenDataset', data_root=str(root))
    assert TokenDataset.check_config(ds, cfg=dict(model=dict(tokenizer_checkpoint=str(a)))) == []
    problems = TokenDataset.check_config(ds, cfg=dict(model=dict(tokenizer_checkpoint=str(b))))
    assert len(problems) == 1 and 'extracted with the tokenizer checkpoint' in problems[0]
    assert str(a) in problems[0]
    b.write_bytes(b'tokenizer c')  # the same size as a, other content: the hash tells
    assert TokenDataset.check_config(ds, cfg=dict(model=dict(tokenizer_checkpoint=str(b))))
