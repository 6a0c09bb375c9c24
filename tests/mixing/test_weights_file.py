"""mixing/static.py's weights file (mixing=manual mixing.weights_file=...): the `weights:` form that
`fit --optimize` writes and a plain {domain: weight} mapping; anything else is a ConfigError naming the
key, the file and both accepted forms."""

from __future__ import annotations

import pytest

from mixtrain.errors import ConfigError, MissingPathError
from mixtrain.mixing.static import Manual, read_weights_file


def test_both_forms_give_the_same_weights(tmp_path):
    fitted = tmp_path / "weights.yaml"
    fitted.write_text("# written by fit --optimize\nweights:\n  code: 0.2\n  prose: 0.8\nstep: 1000\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("code: 0.2\nprose: 0.8\n")
    assert read_weights_file(fitted) == read_weights_file(plain) == {"code": 0.2, "prose": 0.8}
    assert Manual(weights_file=str(plain)).weights_file == str(plain)


@pytest.mark.parametrize("text", ["- 0.5\n- 0.5\n", "code: high\nprose: 0.8\n", "{}\n", "weights: [1, 2]\n", "a: [\n"])
def test_other_contents_are_refused_naming_the_forms(tmp_path, text):
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"mixing.weights_file={path}"):
        read_weights_file(path)


def test_a_missing_file_and_a_bad_choice_are_user_errors(tmp_path):
    with pytest.raises(MissingPathError, match=r"mixing.weights_file=.*nope.yaml does not exist"):
        read_weights_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="exactly one of"):
        Manual()
