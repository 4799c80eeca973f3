package dev.kbert.logic;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Reading the UTF-8 text files an export ships ({@code vocab.txt}, {@code labels.txt}, JSON). */
public final class TextFiles {
    private TextFiles() {}

    /** The whole stream as UTF-8 text (a leading byte-order mark is dropped). Does not close it. */
    public static String readText(InputStream in) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        byte[] chunk = new byte[1 << 16];
        int n;
        while ((n = in.read(chunk)) > 0) {
            buf.write(chunk, 0, n);
        }
        String text = new String(buf.toByteArray(), StandardCharsets.UTF_8);
        return text.startsWith("\uFEFF") ? text.substring(1) : text;
    }

    /**
     * Lines of a text, split on {@code \n} only, each without trailing {@code \r}/{@code \n}
     * (as kbert's Python reader does). A final newline does not start another line.
     */
    public static List<String> lines(String text) {
        List<String> out = new ArrayList<>();
        int start = 0;
        while (start < text.length()) {
            int nl = text.indexOf('\n', start);
            int end = nl < 0 ? text.length() : nl;
            int stripped = end;
            while (stripped > start && text.charAt(stripped - 1) == '\r') {
                stripped--;
            }
            out.add(text.substring(start, stripped));
            start = nl < 0 ? text.length() : nl + 1;
        }
        return out;
    }

    /** {@link #lines(String)} of a UTF-8 stream. Does not close it. */
    public static List<String> readLines(InputStream in) throws IOException {
        return lines(readText(in));
    }
}
