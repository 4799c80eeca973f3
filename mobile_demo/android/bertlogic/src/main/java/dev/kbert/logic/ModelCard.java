package dev.kbert.logic;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * The fields of an export's {@code model_card.json} that an app needs: {@code task},
 * {@code seq_len}, {@code lowercase}, {@code labels} and {@code tflite_outputs}. Other
 * fields are ignored.
 */
public final class ModelCard {
    /** "classify", "ner", "qa", ... */
    public final String task;
    /** The length every model input has. */
    public final int seqLen;
    /** Whether the tokenizer lowercases and strips accents. */
    public final boolean lowercase;
    /** Class or tag names (same as labels.txt); empty when the card has none. */
    public final List<String> labels;
    /** Output names of the TFLite signature, e.g. ["logits"]; empty when absent. */
    public final List<String> tfliteOutputs;

    public ModelCard(String task, int seqLen, boolean lowercase, List<String> labels,
            List<String> tfliteOutputs) {
        this.task = task;
        this.seqLen = seqLen;
        this.lowercase = lowercase;
        this.labels = Collections.unmodifiableList(new ArrayList<>(labels));
        this.tfliteOutputs = Collections.unmodifiableList(new ArrayList<>(tfliteOutputs));
    }

    /** Parses the JSON text of a model card. {@code seq_len} is required. */
    public static ModelCard parse(String json) {
        Map<String, Object> card = Json.parseObject(json);
        Object seqLen = card.get("seq_len");
        if (seqLen == null) {
            throw new IllegalArgumentException("model_card.json: no \"seq_len\"");
        }
        int n = Json.toInt(seqLen, "model_card.json seq_len");
        if (n < 3) {
            throw new IllegalArgumentException("model_card.json: seq_len " + n + " < 3");
        }
        Object task = card.get("task");
        Object lowercase = card.get("lowercase");
        if (lowercase != null && !(lowercase instanceof Boolean)) {
            throw new IllegalArgumentException("model_card.json lowercase: expected true or false");
        }
        Object labels = card.get("labels");
        Object outputs = card.get("tflite_outputs");
        return new ModelCard(
                task instanceof String ? (String) task : "",
                n,
                lowercase == null || (Boolean) lowercase,
                labels == null ? Collections.<String>emptyList()
                        : Json.toStringList(labels, "model_card.json labels"),
                outputs == null ? Collections.<String>emptyList()
                        : Json.toStringList(outputs, "model_card.json tflite_outputs"));
    }

    /** Reads {@code model_card.json} from a stream (not closed). */
    public static ModelCard read(InputStream in) throws IOException {
        return parse(TextFiles.readText(in));
    }
}
