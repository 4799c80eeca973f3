package dev.kbert.demo

import android.app.Activity
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Text in, label + probabilities + latency out. The model is loaded and run on one
 * background thread; the UI thread only updates views.
 */
class MainActivity : Activity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private val ui = Handler(Looper.getMainLooper())
    // Set and used on the worker thread; the UI thread only checks it is there.
    @Volatile private var classifier: Classifier? = null

    private lateinit var status: TextView
    private lateinit var input: EditText
    private lateinit var button: Button
    private lateinit var label: TextView
    private lateinit var probabilities: TextView
    private lateinit var latency: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        status = findViewById(R.id.status)
        input = findViewById(R.id.input)
        button = findViewById(R.id.classify)
        label = findViewById(R.id.label)
        probabilities = findViewById(R.id.probabilities)
        latency = findViewById(R.id.latency)

        button.setOnClickListener { classify(input.text.toString()) }

        worker.execute {
            val message = try {
                val started = System.nanoTime()
                val loaded = Classifier.load(applicationContext)
                classifier = loaded
                val ms = (System.nanoTime() - started) / 1e6
                String.format(
                    Locale.ROOT, "%s · seq_len %d · %d labels · loaded in %.0f ms",
                    loaded.modelFile, loaded.card.seqLen, loaded.labels.size(), ms,
                )
            } catch (e: Exception) {
                "Could not load the model: ${e.message}"
            }
            ui.post {
                status.text = message
                button.isEnabled = classifier != null
            }
        }
    }

    private fun classify(text: String) {
        button.isEnabled = false
        worker.execute {
            val model = classifier ?: return@execute
            val shown = try {
                val r = model.classify(text)
                val p = r.prediction
                Triple(
                    String.format(Locale.ROOT, "%s (%.1f%%)", p.label, 100f * p.probabilities[p.index]),
                    model.labels.format(p.probabilities),
                    String.format(
                        Locale.ROOT, "inference %.1f ms · tokenize %.2f ms · %d tokens%s",
                        r.inferenceMs, r.tokenizeMs, r.tokens,
                        if (r.truncated > 0) " (${r.truncated} cut to fit seq_len)" else "",
                    ),
                )
            } catch (e: Exception) {
                Triple("Error", e.toString(), "")
            }
            ui.post {
                label.text = shown.first
                probabilities.text = shown.second
                latency.text = shown.third
                button.isEnabled = true
            }
        }
    }

    override fun onDestroy() {
        worker.execute { classifier?.close(); classifier = null }
        worker.shutdown()
        super.onDestroy()
    }
}
