package dev.kbert.logic;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class ModelCardTest {
    // The example card of exports/README.md.
    static final String CARD = "{\n"
            + "  \"task\": \"classify\",\n"
            + "  \"seq_len\": 16,\n"
            + "  \"lowercase\": true,\n"
            + "  \"labels\": [\"neg\", \"pos\"],\n"
            + "  \"tflite_inputs\": {\"ids\": \"int32 [1, 16]\", \"mask\": \"int32 [1, 16]\","
            + " \"segment_ids\": \"int32 [1, 16]\"},\n"
            + "  \"tflite_outputs\": [\"logits\"],\n"
            + "  \"savedmodel_signatures\": [\"serving_default\", \"ids\"],\n"
            + "  \"quantization\": [\"tflite_float32\"],\n"
            + "  \"metrics\": {\"keras\": 100.0, \"savedmodel\": 100.0, \"tflite_float32\": 100.0, \"onnx\": 100.0}\n"
            + "}\n";

    @Test
    public void readsTheExampleCard() {
        ModelCard card = ModelCard.parse(CARD);
        assertEquals("classify", card.task);
        assertEquals(16, card.seqLen);
        assertTrue(card.lowercase);
        assertEquals(Arrays.asList("neg", "pos"), card.labels);
        assertEquals(Arrays.asList("logits"), card.tfliteOutputs);
    }

    @Test
    public void defaultsAndErrors() {
        ModelCard card = ModelCard.parse("{\"seq_len\": 64, \"lowercase\": false}");
        assertFalse(card.lowercase);
        assertEquals("", card.task);
        assertTrue(card.labels.isEmpty());
        for (String bad : new String[] {"{}", "{\"seq_len\": 1}", "{\"seq_len\": 1.5}",
                "{\"seq_len\": 64, \"lowercase\": \"yes\"}", "[1]", "{\"seq_len\": 64,}"}) {
            try {
                ModelCard.parse(bad);
                fail("accepted " + bad);
            } catch (IllegalArgumentException expected) {
                // ok
            }
        }
    }

    @Test
    public void jsonValuesAndEscapes() {
        Map<String, Object> m = Json.parseObject(
                "{\"s\": \"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\", \"n\": -12, \"f\": 2.5e1,"
                + " \"t\": true, \"z\": null, \"l\": [1, [2], {}], \"big\": 12345678901234567890}");
        assertEquals("a\"b\\c\né\uD83D\uDE00", m.get("s"));
        assertEquals(-12L, m.get("n"));
        assertEquals(25.0, m.get("f"));
        assertEquals(Boolean.TRUE, m.get("t"));
        assertTrue(m.containsKey("z"));
        assertNull(m.get("z"));
        assertEquals(3, ((List<?>) m.get("l")).size());
        assertTrue(m.get("big") instanceof Double);
        for (String bad : new String[] {"", "{", "{\"a\" 1}", "[1 2]", "\"abc", "tru", "{} x", "\"\\x\""}) {
            try {
                Json.parse(bad);
                fail("accepted " + bad);
            } catch (IllegalArgumentException expected) {
                // ok
            }
        }
    }
}
