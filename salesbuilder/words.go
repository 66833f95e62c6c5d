package salesbuilder

import (
	"hash/fnv"
	"strings"
)

// wordList has 100 short words that are easy to say across a shop counter
// and hard to mishear. Two of them name a number 0…9999 one-to-one:
// 4217 → words[42] + "-" + words[17].
var wordList = [100]string{
	"amber", "apple", "arrow", "basil", "beach", "berry", "birch", "bison", "blaze", "bloom",
	"brook", "cabin", "camel", "candy", "cedar", "chalk", "cherry", "cider", "clover", "cocoa",
	"comet", "coral", "crane", "daisy", "delta", "dingo", "dune", "eagle", "ember", "fable",
	"falcon", "fern", "fig", "flint", "fox", "frost", "gecko", "ginger", "glade", "grape",
	"hazel", "heron", "honey", "iris", "ivory", "jade", "jelly", "kiwi", "koala", "lemon",
	"lilac", "lime", "llama", "lotus", "mango", "maple", "meadow", "melon", "mint", "moss",
	"nectar", "nutmeg", "oak", "ocean", "olive", "orbit", "otter", "panda", "peach", "pearl",
	"pepper", "pine", "plum", "pony", "quail", "raven", "reef", "river", "robin", "rose",
	"sage", "salt", "sky", "snow", "spruce", "stone", "sugar", "swan", "tango", "thyme",
	"tiger", "tulip", "violet", "walnut", "whale", "willow", "wren", "yarrow", "zebra", "zinc",
}

// NumberWord is the word form of n (0…9999): a ticket's word, and
// physkey_random_no_word.
func NumberWord(n int64) string {
	if n < 0 || n > 9999 {
		return ""
	}
	return wordList[n/100] + "-" + wordList[n%100]
}

// WordNumber is the number a word form names, for recall by word.
func WordNumber(word string) (int64, bool) {
	first, second, ok := strings.Cut(strings.ToLower(strings.TrimSpace(word)), "-")
	if !ok {
		first, second, ok = strings.Cut(strings.ToLower(strings.TrimSpace(word)), " ")
	}
	if !ok {
		return 0, false
	}
	a, b := wordIndex(first), wordIndex(strings.TrimSpace(second))
	if a < 0 || b < 0 {
		return 0, false
	}
	return int64(a*100 + b), true
}

func wordIndex(w string) int {
	for i, x := range wordList {
		if x == w {
			return i
		}
	}
	return -1
}

// randomNo is physkey_random_no: a short number derived from the physkey
// that staff can read out (it repeats across sales; SPEC §7.2).
func randomNo(physkey string) int64 {
	h := fnv.New32a()
	h.Write([]byte(physkey))
	return int64(h.Sum32() % 10000)
}
