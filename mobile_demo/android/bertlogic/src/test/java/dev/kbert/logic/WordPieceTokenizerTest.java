package dev.kbert.logic;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import org.junit.Test;

public class WordPieceTokenizerTest {
    // ids 0-4: the specials; then:
    //    5      6        7       8      9       10    11       12        13   14   15      16
    static final List<String> VOCAB = Arrays.asList("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
            "the", "movie", "good", "was", "dull", "un", "##aff", "##able", ",", "!", "cafe", "中",
            // 17   18       19
            "σασ", "##ing", "play");

    static WordPieceTokenizer tok(boolean lowercase) {
        return new WordPieceTokenizer(VOCAB, lowercase);
    }

    @Test
    public void specialIds() {
        WordPieceTokenizer t = tok(true);
        assertEquals(0, t.padId);
        assertEquals(1, t.unkId);
        assertEquals(2, t.clsId);
        assertEquals(3, t.sepId);
        assertEquals(20, t.vocabSize());
        assertEquals("movie", t.token(6));
        assertEquals(-1, t.id("nope"));
    }

    @Test
    public void readsVocabLikePython() throws IOException {
        String text = "\uFEFF[PAD]\r\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n";
        WordPieceTokenizer t = WordPieceTokenizer.fromVocab(
                new ByteArrayInputStream(text.getBytes(StandardCharsets.UTF_8)), true);
        assertEquals(6, t.vocabSize());
        assertEquals(5, t.id("the"));
        assertEquals(1, t.id("[UNK]"));
    }

    @Test
    public void rejectsBadVocab() {
        try {
            new WordPieceTokenizer(Arrays.asList("[PAD]", "[UNK]", "[CLS]", "[SEP]"), true);
            fail("missing [MASK] accepted");
        } catch (IllegalArgumentException expected) {
            // ok
        }
        try {
            new WordPieceTokenizer(Arrays.asList("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "a"), true);
            fail("duplicate accepted");
        } catch (IllegalArgumentException expected) {
            // ok
        }
    }

    @Test
    public void normalizes() {
        WordPieceTokenizer t = tok(true);
        assertEquals("cafe creme", t.normalize("Café Crème"));
        assertEquals("a b c", t.normalize("a\tb\nc"));
        assertEquals("ab", t.normalize("a\u0000\u0007\u200B\uFFFD\uFEFFb"));
        assertEquals("σασ σ", t.normalize("ΣΑΣ Σ"));
        assertEquals("Café", tok(false).normalize("Café"));
    }

    @Test
    public void splitsWordsPunctuationAndCjk() {
        WordPieceTokenizer t = tok(true);
        assertEquals(Arrays.asList("the", "movie", ",", "was", "dull", "!", "!"),
                t.basicTokenize("  The movie, was\u00A0DULL!! "));
        assertEquals(Arrays.asList("a", "中", "b", "$", "5"), t.basicTokenize("a中b $5"));
        assertEquals(Arrays.asList("x", "—", "y"), t.basicTokenize("x—y"));
    }

    @Test
    public void wordPieceGreedyLongestMatch() {
        WordPieceTokenizer t = tok(true);
        assertArrayEquals(new int[] {5, 6, 8, 9, 13}, t.tokenize("The movie was dull,"));
        assertArrayEquals(new int[] {10, 11, 12}, t.tokenize("unaffable"));
        assertArrayEquals(new int[] {19, 18}, t.tokenize("Playing"));
        // A word that cannot be split entirely is one [UNK], even if a prefix matched.
        assertArrayEquals(new int[] {1, 5}, t.tokenize("unaffablex the"));
        assertArrayEquals(new int[] {15, 16, 17}, t.tokenize("Café 中 ΣΑΣ"));
        assertArrayEquals(new int[] {}, t.tokenize(" \t\n"));
    }

    @Test
    public void wordsOverHundredCharsAreUnknown() {
        WordPieceTokenizer t = new WordPieceTokenizer(Arrays.asList(
                "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##a"), true);
        char[] hundred = new char[100];
        Arrays.fill(hundred, 'a');
        assertEquals(100, t.tokenize(new String(hundred)).length);
        assertArrayEquals(new int[] {1}, t.tokenize(new String(hundred) + "a"));
    }

    @Test
    public void packsSingleText() {
        WordPieceTokenizer t = tok(true);
        WordPieceTokenizer.Encoding e = t.encode("the movie was dull", 8);
        assertArrayEquals(new int[] {2, 5, 6, 8, 9, 3, 0, 0}, e.ids);
        assertArrayEquals(new int[] {1, 1, 1, 1, 1, 1, 0, 0}, e.mask);
        assertArrayEquals(new int[8], e.segmentIds);
        assertEquals(6, e.length());
        assertEquals(0, e.truncated);
    }

    @Test
    public void truncatesToSeqLen() {
        WordPieceTokenizer t = tok(true);
        WordPieceTokenizer.Encoding e = t.encode("the movie was dull", 4);
        assertArrayEquals(new int[] {2, 5, 6, 3}, e.ids);
        assertArrayEquals(new int[] {1, 1, 1, 1}, e.mask);
        assertEquals(2, e.truncated);
        try {
            t.encode("the", 2);
            fail("seq_len 2 accepted");
        } catch (IllegalArgumentException expected) {
            // ok
        }
    }

    @Test
    public void packsPairsLongestFirst() {
        WordPieceTokenizer t = tok(true);
        int[] a = {10, 11, 12, 13, 14};
        int[] b = {5, 6};
        WordPieceTokenizer.Encoding e = t.pack(a, b, 8);
        // budget 5: a keeps 3, b keeps 2.
        assertArrayEquals(new int[] {2, 10, 11, 12, 3, 5, 6, 3}, e.ids);
        assertArrayEquals(new int[] {0, 0, 0, 0, 0, 1, 1, 1}, e.segmentIds);
        assertEquals(2, e.truncated);
        // Ties cut the second segment first.
        WordPieceTokenizer.Encoding tie = t.pack(new int[] {5, 6}, new int[] {8, 9}, 6);
        assertArrayEquals(new int[] {2, 5, 6, 3, 8, 3}, tie.ids);
        WordPieceTokenizer.Encoding padded = t.encode("the", "movie", 7);
        assertArrayEquals(new int[] {2, 5, 3, 6, 3, 0, 0}, padded.ids);
        assertArrayEquals(new int[] {1, 1, 1, 1, 1, 0, 0}, padded.mask);
        assertArrayEquals(new int[] {0, 0, 0, 1, 1, 0, 0}, padded.segmentIds);
    }
}
