#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "crossrank/stemmer_english.hpp"

using crossrank::stem_english;

// Expected stems are PyStemmer 3.1.0 ("english"); the full-vocabulary comparison is in
// tests/test_analyzer.py.
TEST_CASE("Snowball English: known stems") {
    const std::vector<std::pair<const char*, const char*>> cases = {
        {"caresses", "caress"},
        {"ponies", "poni"},
        {"ties", "tie"},
        {"cats", "cat"},
        {"gas", "gas"},
        {"gaps", "gap"},
        {"running", "run"},
        {"hopping", "hop"},
        {"hoping", "hope"},
        {"agreed", "agre"},
        {"feed", "feed"},
        {"proceed", "proceed"},
        {"exceeding", "exceed"},
        {"succeeded", "succeed"},
        {"dying", "die"},
        {"lying", "lie"},
        {"inning", "inning"},
        {"evening", "evening"},
        {"generously", "generous"},
        {"communism", "communism"},
        {"international", "internat"},
        {"pasted", "paste"},
        {"biologist", "biolog"},
        {"relational", "relat"},
        {"conditional", "condit"},
        {"sensibility", "sensibl"},
        {"happy", "happi"},
        {"skies", "sky"},
        {"news", "news"},
        {"only", "onli"},
        {"sayings", "say"},
        {"yes", "yes"},
        {"controll", "control"},
        {"dog's", "dog"},
        {"naïve", "naïv"},
        {"cafés", "café"},
        {"at", "at"},
        {"", ""},
        {"emergency", "emergenc"},
    };
    for (const auto& [word, stem] : cases) {
        CAPTURE(word);
        CHECK(stem_english(word) == stem);
    }
}

TEST_CASE("Snowball English: odd input is carried through, never crashes") {
    CHECK(stem_english("'") == "'");
    CHECK(stem_english("'''") == "'");
    CHECK(stem_english("\xFF\xFEing") == "\xFF\xFEing");
    CHECK(stem_english("YAY") == "YAi");  // as PyStemmer: uppercase input is not lowercased
}
