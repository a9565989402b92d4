"""The token-folder format has one writer, one reader and one agreement check
(mmspectral/fileio/token_folder.py): what the writer records the reader returns, an unfinished or missing
extraction is named with what to run, and a model that expects other sizes or another tokenizer checkpoint is
told which key to change."""
import json

import pytest

from mmspectral.fileio import (TOKEN_FOLDER_META, file_identity, read_token_meta, token_class_names,
                               token_meta_problems, write_token_meta)


def test_what_is_written_is_read_and_an_unfinished_extraction_is_refused(tmp_path):
    root = str(tmp_path)
    with pytest.raises(FileNotFoundError, match='holds no extracted tokens.*tools/extract_tokens.py'):
        read_token_meta(root)
    meta = dict(num_images=10, done=4, complete=False, num_tokens=16, vocab_size=512, classes=['a', 'b'])
    write_token_meta(root, meta)
    assert json.load(open(tmp_path / TOKEN_FOLDER_META)) == meta
    with pytest.raises(RuntimeError, match=r'unfinished \(4 of 10 images\).*continues where it stopped'):
        read_token_meta(root)
    assert read_token_meta(root, require_complete=False) == meta
    write_token_meta(root, dict(meta, done=10, complete=True))
    assert read_token_meta(root)['complete'] and token_class_names(root) == ('a', 'b')
    (tmp_path / TOKEN_FOLDER_META).write_text('{broken')
    assert token_class_names(root) == () and token_class_names(None) == ()


def test_problems_name_the_key_to_change_and_the_checkpoint_that_made_the_tokens(tmp_path):
    made, other = tmp_path / 'made.pth', tmp_path / 'other.pth'
    made.write_bytes(b'tokenizer one')
    other.write_bytes(b'tokenizer two!')
    identity = file_identity(str(made))
    meta = dict(num_tokens=16, vocab_size=512, checkpoint=str(made), checkpoint_size=identity['size'],
                checkpoint_sha256=identity['sha256'])
    expected = dict(num_tokens=((16, 'model.generator.num_tokens'),),
                    vocab_size=((None, 'x'), (4096, 'model.generator.vocab_size')))
    problems = token_meta_problems(meta, 'root', 'train_dataloader.dataset', expected, str(made))
    assert problems == ["train_dataloader.dataset: the tokens in 'root' have vocab_size=512 but "
                        'model.generator.vocab_size=4096: they were extracted with another tokenizer. '
                        'Extract them again with the tokenizer of this config, or set '
                        'model.generator.vocab_size=512.']
    assert token_meta_problems(meta, 'root', 'w', dict(num_tokens=((16, 'k'),)), str(made)) == []
    wrong = token_meta_problems(meta, 'root', 'w', {}, str(other))
    assert len(wrong) == 1 and 'extracted with the tokenizer checkpoint' in wrong[0]
    assert str(other) in wrong[0]
