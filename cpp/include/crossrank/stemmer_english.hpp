// Snowball English ("Porter2") stemmer, written from the algorithm description at
// https://snowballstem.org/algorithms/english/stemmer.html (the version shipped with Snowball 3.0,
// which PyStemmer 3.1 uses: the exceptional R1 prefixes gener/commun/arsen/past/univers/later/emerg/
// organ/inter, the -eed/-ing exceptions handled inside Step 1b, and 'ogist').
//
// Output equals PyStemmer's Stemmer("english").stemWord(w) for every input, including non-ASCII
// letters (which the algorithm treats as non-vowels; lengths and regions count code points).
// tests/test_analyzer.py checks this over the whole vocabulary of several BEIR collections.
#pragma once

#include <string>
#include <string_view>

namespace crossrank {

// Stems one word given as UTF-8. Thread-safe, allocation per call, no cache (Analyzer caches).
// Invalid UTF-8 bytes are carried through unchanged as non-vowels.
std::string stem_english(std::string_view lowercased_word);

}  // namespace crossrank
