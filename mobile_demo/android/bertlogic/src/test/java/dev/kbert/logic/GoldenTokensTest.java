package dev.kbert.logic;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * The Java tokenizer against {@code mobile_demo/shared/golden_tokens.json}, written by
 * kbert's Python tokenizer ({@code mobile_demo/shared/make_golden.py}) and shared with the
 * web demo's tests. Every case must match: pieces, packed ids and mask.
 *
 * <p>The file is found through the system property {@code kbert.golden} (run_tests.sh sets
 * it), else at {@code ../../shared/golden_tokens.json} from the working directory (the
 * module directory under Gradle).
 */
public class GoldenTokensTest {
    static File goldenFile() {
        String path = System.getProperty("kbert.golden");
        return new File(path != null ? path : "../../shared/golden_tokens.json");
    }

    static String describe(WordPieceTokenizer tok, int[] ids) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < ids.length; i++) {
            sb.append(i == 0 ? "" : " ").append(tok.token(ids[i]));
        }
        return sb.append(']').toString();
    }

    @Test
    public void javaTokenizerMatchesPythonGoldenFile() throws IOException {
        File golden = goldenFile();
        assertTrue("golden file not found: " + golden.getAbsolutePath(), golden.isFile());
        Map<String, Object> root;
        try (InputStream in = new FileInputStream(golden)) {
            root = Json.parseObject(TextFiles.readText(in));
        }
        File vocabFile = new File(golden.getParentFile(), (String) root.get("vocab"));
        boolean lowercase = (Boolean) root.get("lowercase");
        int seqLen = Json.toInt(root.get("seq_len"), "seq_len");
        WordPieceTokenizer tok;
        try (InputStream in = new FileInputStream(vocabFile)) {
            tok = WordPieceTokenizer.fromVocab(in, lowercase);
        }
        List<?> cases = (List<?>) root.get("cases");
        int matched = 0;
        int shown = 0;
        for (int i = 0; i < cases.size(); i++) {
            Map<?, ?> c = (Map<?, ?>) cases.get(i);
            String text = (String) c.get("text");
            int[] pieces = Json.toIntArray(c.get("pieces"), "cases[" + i + "].pieces");
            int[] ids = Json.toIntArray(c.get("ids"), "cases[" + i + "].ids");
            int[] mask = Json.toIntArray(c.get("mask"), "cases[" + i + "].mask");
            int[] gotPieces = tok.tokenize(text);
            WordPieceTokenizer.Encoding enc = tok.encode(text, seqLen);
            boolean ok = Arrays.equals(pieces, gotPieces) && Arrays.equals(ids, enc.ids)
                    && Arrays.equals(mask, enc.mask) && enc.segmentIds.length == seqLen
                    && Arrays.stream(enc.segmentIds).allMatch(s -> s == 0);
            if (ok) {
                matched++;
            } else if (shown++ < 10) {
                String shortText = text.length() > 120 ? text.substring(0, 120) + "..." : text;
                System.out.println("golden case " + i + " differs: " + shortText);
                System.out.println("  python: " + describe(tok, pieces));
                System.out.println("  java:   " + describe(tok, gotPieces));
            }
        }
        System.out.println("golden: " + matched + "/" + cases.size() + " cases match");
        assertTrue("golden file has no cases", cases.size() > 0);
        assertEquals("golden cases matching", cases.size(), matched);
    }
}
