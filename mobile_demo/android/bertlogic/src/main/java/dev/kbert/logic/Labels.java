package dev.kbert.logic;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * Class names ({@code labels.txt}: id = line number - 1) and turning a classifier's
 * {@code logits} into probabilities and a label.
 */
public final class Labels {
    private final List<String> names;

    public Labels(List<String> names) {
        this.names = Collections.unmodifiableList(new ArrayList<>(names));
    }

    /** Reads {@code labels.txt}: one name per line; trailing empty lines are ignored. */
    public static Labels read(InputStream labelsTxt) throws IOException {
        List<String> lines = TextFiles.readLines(labelsTxt);
        int n = lines.size();
        while (n > 0 && lines.get(n - 1).isEmpty()) {
            n--;
        }
        return new Labels(lines.subList(0, n));
    }

    public List<String> names() {
        return names;
    }

    public int size() {
        return names.size();
    }

    /** The name of class {@code index}, or "class N" when there is no such line. */
    public String name(int index) {
        return index >= 0 && index < names.size() ? names.get(index) : "class " + index;
    }

    /** Softmax (stable: the maximum is subtracted first). */
    public static float[] softmax(float[] logits) {
        if (logits.length == 0) {
            return new float[0];
        }
        float max = Float.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double[] exp = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            exp[i] = Math.exp((double) logits[i] - max);
            sum += exp[i];
        }
        float[] out = new float[logits.length];
        for (int i = 0; i < logits.length; i++) {
            out[i] = (float) (exp[i] / sum);
        }
        return out;
    }

    /** Index of the largest value (the first one on ties); -1 for an empty array. */
    public static int argmax(float[] values) {
        int best = -1;
        for (int i = 0; i < values.length; i++) {
            if (best < 0 || values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Indices sorted by value, largest first (stable on ties). */
    public static Integer[] ranking(float[] values) {
        Integer[] order = new Integer[values.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> Float.compare(values[y], values[x]));
        return order;
    }

    /** A classifier's answer for one text. */
    public static final class Prediction {
        public final int index;
        public final String label;
        public final float[] probabilities;

        Prediction(int index, String label, float[] probabilities) {
            this.index = index;
            this.label = label;
            this.probabilities = probabilities;
        }
    }

    /** Softmax and argmax of one row of logits, named with these labels. */
    public Prediction predict(float[] logits) {
        float[] probs = softmax(logits);
        int best = argmax(probs);
        return new Prediction(best, best < 0 ? "" : name(best), probs);
    }

    /** "pos 0.912" lines, most probable first, for display. */
    public String format(float[] probabilities) {
        StringBuilder sb = new StringBuilder();
        for (int i : ranking(probabilities)) {
            if (sb.length() > 0) {
                sb.append('\n');
            }
            sb.append(name(i)).append(String.format(java.util.Locale.ROOT, "  %.3f", probabilities[i]));
        }
        return sb.toString();
    }
}
