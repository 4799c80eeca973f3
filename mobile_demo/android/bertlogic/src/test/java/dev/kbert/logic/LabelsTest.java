package dev.kbert.logic;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.Test;

public class LabelsTest {
    @Test
    public void softmaxIsStableAndSumsToOne() {
        float[] p = Labels.softmax(new float[] {1000f, 1000f});
        assertArrayEquals(new float[] {0.5f, 0.5f}, p, 1e-6f);
        float[] q = Labels.softmax(new float[] {0.5205399f, -0.6111377f});
        assertEquals(1.0, q[0] + q[1], 1e-6);
        // 1 / (1 + exp(-1.1316776))
        assertEquals(0.75615, q[0], 1e-4);
        assertEquals(0, Labels.softmax(new float[0]).length);
    }

    @Test
    public void argmaxAndRanking() {
        assertEquals(1, Labels.argmax(new float[] {0.1f, 0.7f, 0.2f}));
        assertEquals(0, Labels.argmax(new float[] {0.5f, 0.5f}));
        assertEquals(-1, Labels.argmax(new float[0]));
        assertArrayEquals(new Integer[] {1, 2, 0}, Labels.ranking(new float[] {0.1f, 0.7f, 0.2f}));
    }

    @Test
    public void readsLabelsTxtAndPredicts() throws IOException {
        Labels labels = Labels.read(new ByteArrayInputStream(
                "neg\r\npos\n\n".getBytes(StandardCharsets.UTF_8)));
        assertEquals(Arrays.asList("neg", "pos"), labels.names());
        Labels.Prediction p = labels.predict(new float[] {0.5205399f, -0.6111377f});
        assertEquals(0, p.index);
        assertEquals("neg", p.label);
        assertEquals("neg  0.756\npos  0.244", labels.format(p.probabilities));
        assertEquals("class 7", labels.name(7));
    }
}
