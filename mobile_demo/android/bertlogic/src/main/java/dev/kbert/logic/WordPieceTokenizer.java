package dev.kbert.logic;

import java.io.IOException;
import java.io.InputStream;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * BERT WordPiece tokenizer giving the same ids as kbert's Python {@code BertTokenizer}
 * (tf-text's {@code FastBertTokenizer} behind Hugging Face-style text cleaning), and the
 * packing into the fixed-length {@code ids}/{@code mask}/{@code segment_ids} inputs of an
 * exported TFLite model.
 *
 * <p>Steps, as in {@code kbert.tokenization}:
 * <ol>
 *   <li>Clean: tab, newline and carriage return become spaces; U+FFFD and every control,
 *       format, private-use or surrogate character (categories Cc, Cf, Co, Cs) is dropped.</li>
 *   <li>If {@code lowercase}: NFD, drop nonspacing marks (Mn), then lowercase (a capital
 *       sigma always becomes "σ").</li>
 *   <li>Split on whitespace, then around punctuation (Unicode P* categories and the ASCII
 *       symbols 33-47, 58-64, 91-96, 123-126) and around each CJK ideograph.</li>
 *   <li>Split each word greedily into the longest vocabulary pieces, later pieces with the
 *       "##" prefix. A word that cannot be split, or of more than 100 characters, is one
 *       {@code [UNK]}.</li>
 * </ol>
 *
 * <p>Pure Java, no Android dependency; instances are immutable and thread-safe.
 */
public final class WordPieceTokenizer {
    /** Hugging Face's {@code max_input_chars_per_word}: longer words become [UNK]. */
    public static final int MAX_CHARS_PER_WORD = 100;
    private static final String SUFFIX = "##";

    private final List<String> vocab;
    private final Map<String, Integer> ids;
    private final boolean lowercase;
    public final int padId;
    public final int unkId;
    public final int clsId;
    public final int sepId;

    /**
     * @param vocab the tokens, indexed by id ({@code vocab.txt}: id = line number - 1).
     * @param lowercase lowercase and strip accents, for uncased models
     *     ({@code model_card.json}'s {@code "lowercase"}).
     */
    public WordPieceTokenizer(List<String> vocab, boolean lowercase) {
        this.vocab = new ArrayList<>(vocab);
        this.ids = new HashMap<>(vocab.size() * 2);
        for (int i = 0; i < vocab.size(); i++) {
            String token = vocab.get(i);
            if (token.isEmpty()) {
                throw new IllegalArgumentException("vocab line " + (i + 1) + ": empty token");
            }
            if (ids.put(token, i) != null) {
                throw new IllegalArgumentException(
                        "vocab line " + (i + 1) + ": duplicate token " + token);
            }
        }
        this.lowercase = lowercase;
        this.padId = special("[PAD]");
        this.unkId = special("[UNK]");
        this.clsId = special("[CLS]");
        this.sepId = special("[SEP]");
        special("[MASK]");
    }

    /** A tokenizer reading {@code vocab.txt} from a stream (not closed). */
    public static WordPieceTokenizer fromVocab(InputStream vocabTxt, boolean lowercase)
            throws IOException {
        return new WordPieceTokenizer(TextFiles.readLines(vocabTxt), lowercase);
    }

    private int special(String token) {
        Integer id = ids.get(token);
        if (id == null) {
            throw new IllegalArgumentException("vocab: missing special token " + token);
        }
        return id;
    }

    public int vocabSize() {
        return vocab.size();
    }

    public boolean lowercase() {
        return lowercase;
    }

    /** The token string of an id. */
    public String token(int id) {
        return vocab.get(id);
    }

    /** The id of a token, or -1. */
    public int id(String token) {
        Integer id = ids.get(token);
        return id == null ? -1 : id;
    }

    // ---------------------------------------------------------------- normalization

    /** Text cleaning, then (when lowercasing) accent stripping and lowercasing. */
    public String normalize(String text) {
        String cleaned = clean(text);
        if (!lowercase) {
            return cleaned;
        }
        String nfd = Normalizer.normalize(cleaned, Normalizer.Form.NFD);
        StringBuilder sb = new StringBuilder(nfd.length());
        for (int i = 0; i < nfd.length(); ) {
            int cp = nfd.codePointAt(i);
            i += Character.charCount(cp);
            if (Character.getType(cp) == Character.NON_SPACING_MARK) {
                continue;
            }
            // Java's toLowerCase turns a word-final capital sigma into "ς"; the Python side
            // (like Hugging Face) always gives "σ".
            sb.appendCodePoint(cp == 0x03A3 ? 0x03C3 : cp);
        }
        return sb.toString().toLowerCase(Locale.ROOT);
    }

    /** Hugging Face's BERT text cleaning, as in {@code kbert.tokenization.clean_text}. */
    public static String clean(String text) {
        StringBuilder sb = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == '\t' || cp == '\n' || cp == '\r') {
                sb.append(' ');
                continue;
            }
            if (cp == 0xFFFD) {
                continue;
            }
            switch (Character.getType(cp)) {
                case Character.CONTROL:
                case Character.FORMAT:
                case Character.PRIVATE_USE:
                case Character.SURROGATE:
                    continue;
                default:
                    sb.appendCodePoint(cp);
            }
        }
        return sb.toString();
    }

    // ---------------------------------------------------------------- splitting

    /** Unicode White_Space (what tf-text splits words on). */
    static boolean isWhitespace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0
                || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028
                || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    }

    /** BERT's punctuation: ASCII non-alphanumeric symbols and Unicode P* categories. */
    static boolean isPunctuation(int cp) {
        if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96)
                || (cp >= 123 && cp <= 126)) {
            return true;
        }
        switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION:
            case Character.DASH_PUNCTUATION:
            case Character.START_PUNCTUATION:
            case Character.END_PUNCTUATION:
            case Character.INITIAL_QUOTE_PUNCTUATION:
            case Character.FINAL_QUOTE_PUNCTUATION:
            case Character.OTHER_PUNCTUATION:
                return true;
            default:
                return false;
        }
    }

    /** BERT's "Chinese character" blocks (CJK Unified Ideographs and extensions). */
    static boolean isCjk(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF)
                || (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F)
                || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF)
                || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }

    /** Normalized text split into words: whitespace-separated, punctuation and CJK alone. */
    public List<String> basicTokenize(String text) {
        String norm = normalize(text);
        List<String> words = new ArrayList<>();
        StringBuilder word = new StringBuilder();
        for (int i = 0; i < norm.length(); ) {
            int cp = norm.codePointAt(i);
            i += Character.charCount(cp);
            if (isWhitespace(cp)) {
                flush(word, words);
            } else if (isPunctuation(cp) || isCjk(cp)) {
                flush(word, words);
                words.add(new String(Character.toChars(cp)));
            } else {
                word.appendCodePoint(cp);
            }
        }
        flush(word, words);
        return words;
    }

    private static void flush(StringBuilder word, List<String> words) {
        if (word.length() > 0) {
            words.add(word.toString());
            word.setLength(0);
        }
    }

    // ---------------------------------------------------------------- wordpiece

    /** WordPiece ids of one word (greedy longest match), or a single [UNK]. */
    void wordPiece(String word, List<Integer> out) {
        int chars = word.codePointCount(0, word.length());
        if (chars > MAX_CHARS_PER_WORD) {
            out.add(unkId);
            return;
        }
        int mark = out.size();
        int start = 0;
        while (start < word.length()) {
            int end = word.length();
            Integer found = null;
            while (end > start) {
                String piece = word.substring(start, end);
                found = ids.get(start == 0 ? piece : SUFFIX + piece);
                if (found != null) {
                    break;
                }
                end = word.offsetByCodePoints(end, -1);
            }
            if (found == null) {
                while (out.size() > mark) {
                    out.remove(out.size() - 1);
                }
                out.add(unkId);
                return;
            }
            out.add(found);
            start = end;
        }
    }

    /** WordPiece ids of a text, without [CLS]/[SEP] and untruncated. */
    public int[] tokenize(String text) {
        List<Integer> out = new ArrayList<>();
        for (String word : basicTokenize(text)) {
            wordPiece(word, out);
        }
        int[] result = new int[out.size()];
        for (int i = 0; i < result.length; i++) {
            result[i] = out.get(i);
        }
        return result;
    }

    // ---------------------------------------------------------------- packing

    /** The three int32 {@code [seq_len]} model inputs of one example. */
    public static final class Encoding {
        /** {@code [CLS]} pieces {@code [SEP]}, then {@code [PAD]} (0) up to seq_len. */
        public final int[] ids;
        /** 1 for every real token ([CLS] and [SEP] included), 0 for padding. */
        public final int[] mask;
        /** 0 for the first text and its [SEP], 1 for a second text and its [SEP], 0 padding. */
        public final int[] segmentIds;
        /** How many pieces were cut off to fit seq_len (both texts together). */
        public final int truncated;

        Encoding(int[] ids, int[] mask, int[] segmentIds, int truncated) {
            this.ids = ids;
            this.mask = mask;
            this.segmentIds = segmentIds;
            this.truncated = truncated;
        }

        /** Number of real tokens (the mask's sum). */
        public int length() {
            int n = 0;
            for (int m : mask) {
                n += m;
            }
            return n;
        }
    }

    /** Tokenizes and packs one text: {@code [CLS] text [SEP] 0 0 ...}. */
    public Encoding encode(String text, int seqLen) {
        return pack(tokenize(text), null, seqLen);
    }

    /** Tokenizes and packs a text pair: {@code [CLS] a [SEP] b [SEP] 0 0 ...}. */
    public Encoding encode(String text, String textPair, int seqLen) {
        return pack(tokenize(text), tokenize(textPair), seqLen);
    }

    /**
     * Packs wordpiece ids into fixed-length inputs. The longer segment is truncated first
     * (the second on ties), as in BERT's {@code _truncate_seq_pair} and kbert's {@code pack}.
     *
     * @param a the first segment's pieces.
     * @param b the second segment's pieces, or null for a single text.
     */
    public Encoding pack(int[] a, int[] b, int seqLen) {
        int specials = b == null ? 2 : 3;
        if (seqLen < specials + 1) {
            throw new IllegalArgumentException(
                    "seq_len " + seqLen + " is too small: need at least " + (specials + 1));
        }
        int budget = seqLen - specials;
        int na = a.length;
        int nb = b == null ? 0 : b.length;
        while (na + nb > budget) {
            if (na > nb) {
                na--;
            } else {
                nb--;
            }
        }
        int[] ids = new int[seqLen];
        int[] mask = new int[seqLen];
        int[] segments = new int[seqLen];
        java.util.Arrays.fill(ids, padId);
        int n = 0;
        ids[n++] = clsId;
        for (int i = 0; i < na; i++) {
            ids[n++] = a[i];
        }
        ids[n++] = sepId;
        int firstEnd = n;
        if (b != null) {
            for (int i = 0; i < nb; i++) {
                ids[n++] = b[i];
            }
            ids[n++] = sepId;
        }
        for (int i = 0; i < n; i++) {
            mask[i] = 1;
            segments[i] = i < firstEnd ? 0 : 1;
        }
        int truncated = a.length - na + (b == null ? 0 : b.length - nb);
        return new Encoding(ids, mask, segments, truncated);
    }
}
