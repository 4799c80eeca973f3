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
 * Text in, label + probabilities + latency out (a classify export), or the cosine
 * similarity of the first two lines (an embed export). The model is loaded and run on
 * one background thread; the UI thread only updates views.
 */
class MainActivity : Activity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private val ui = Handler(Looper.getMainLooper())
    // Set and used on the worker thread; the UI thread only checks it is there.
    @Volatile private var model: TextModel? = null

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

        button.setOnClickListener { run(input.text.toString()) }

        worker.execute {
            val message = try {
                val started = System.nanoTime()
                val loaded = TextModel.load(applicationContext)
                model = loaded
                val ms = (System.nanoTime() - started) / 1e6
                val what = if (loaded.isClassifier) "${loaded.card.labels.size} labels" else "embedder"
                String.format(
                    Locale.ROOT, "%s · MediaPipe · seq_len %d · %s · loaded in %.0f ms",
                    loaded.modelFile, loaded.card.seqLen, what, ms,
                )
            } catch (e: Exception) {
                "Could not load the model: ${e.message}"
            }
            ui.post {
                status.text = message
                model?.let { if (!it.isClassifier) button.setText(R.string.compare) }
                button.isEnabled = model != null
            }
        }
    }

    private fun run(text: String) {
        button.isEnabled = false
        worker.execute {
            val loaded = model ?: return@execute
            val shown = try {
                if (loaded.isClassifier) {
                    val r = loaded.classify(text)
                    val top = r.scores.first()
                    Triple(
                        String.format(Locale.ROOT, "%s (%.1f%%)", top.label, 100f * top.probability),
                        r.scores.joinToString("\n") {
                            String.format(Locale.ROOT, "%-12s %6.2f%%", it.label, 100f * it.probability)
                        },
                        String.format(Locale.ROOT, "tokenize + inference %.1f ms (MediaPipe)", r.ms),
                    )
                } else {
                    val lines = text.lines().filter { it.isNotBlank() }
                    if (lines.size < 2) {
                        Triple("Two lines, please", "Type one sentence per line: the first two are compared.", "")
                    } else {
                        val r = loaded.similarity(lines[0], lines[1])
                        Triple(
                            String.format(Locale.ROOT, "cosine %.3f", r.cosine),
                            "\"${lines[0]}\"\n\"${lines[1]}\"",
                            String.format(Locale.ROOT, "two embeddings %.1f ms (MediaPipe)", r.ms),
                        )
                    }
                }
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
        worker.execute { model?.close(); model = null }
        worker.shutdown()
        super.onDestroy()
    }
}
