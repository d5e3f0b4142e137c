from mixtura_operator.wording import counted, counted_subject


def test_a_count_of_one_takes_the_singular_and_any_other_the_plural():
    assert counted(1, "trial") == "1 trial"
    assert [counted(n, "trial") for n in (0, 2)] == ["0 trials", "2 trials"]
    assert counted(2, "MixtureSearch", "MixtureSearches") == "2 MixtureSearches"
    assert counted(1, "MixtureSearch", "MixtureSearches") == "1 MixtureSearch"


def test_the_verb_agrees_with_the_count():
    assert counted_subject(1, "trial", "runs", "run") == "1 trial runs"
    assert counted_subject(3, "run", "has", "have") == "3 runs have"
