// The samples of one utterance between the synthesis thread (Write, as Synthesizer's OnAudio emits the trimmed
// streaming pieces) and the audio thread (Read, from AudioClip's PCM reader callback). Reads are sample-exact
// across piece joins: the samples read are the pieces concatenated, nothing dropped, repeated or inserted, except
// silence when the reader runs ahead of synthesis (counted in UnderrunSamples; PlaybackGate pauses playback instead).
// Unity-independent (tested under mono).
using System;
using System.Collections.Generic;

namespace CosyVoice3.Speech
{
    public sealed class AudioStream
    {
        readonly object gate = new object();
        readonly Queue<float[]> pieces = new Queue<float[]>();
        readonly List<float[]> all = new List<float[]>();
        int headOffset;
        long written, read, underrun;
        bool complete;

        public readonly int SampleRate;

        public AudioStream(int sampleRate) { SampleRate = sampleRate; }

        /// <summary>Synthesis thread: append a piece (kept as is; the caller must not change it afterwards).</summary>
        public void Write(float[] piece)
        {
            if (piece == null || piece.Length == 0) return;
            lock (gate)
            {
                if (complete) throw new InvalidOperationException("the audio stream is complete");
                pieces.Enqueue(piece);
                all.Add(piece);
                written += piece.Length;
            }
        }

        /// <summary>No more samples will come (finished, failed or canceled).</summary>
        public void Complete() { lock (gate) complete = true; }

        /// <summary>
        /// Audio thread: fills <paramref name="dst"/>[offset, offset + count) with the next samples; what is not
        /// available yet is silence (counted as underrun unless the stream is complete). Returns the samples copied.
        /// </summary>
        public int Read(float[] dst, int offset, int count)
        {
            int copied = 0;
            lock (gate)
            {
                while (copied < count && pieces.Count > 0)
                {
                    var head = pieces.Peek();
                    int n = Math.Min(count - copied, head.Length - headOffset);
                    Array.Copy(head, headOffset, dst, offset + copied, n);
                    copied += n;
                    headOffset += n;
                    if (headOffset == head.Length) { pieces.Dequeue(); headOffset = 0; }
                }
                read += copied;
                if (copied < count && !complete) underrun += count - copied;
            }
            if (copied < count) Array.Clear(dst, offset + copied, count - copied);
            return copied;
        }

        public long Written { get { lock (gate) return written; } }
        public long ReadSamples { get { lock (gate) return read; } }
        public long Buffered { get { lock (gate) return written - read; } }
        public long UnderrunSamples { get { lock (gate) return underrun; } }
        public bool IsComplete { get { lock (gate) return complete; } }
        /// <summary>Complete and every sample read.</summary>
        public bool IsDrained { get { lock (gate) return complete && written == read; } }

        /// <summary>Every sample written so far, concatenated (the finished clip's data).</summary>
        public float[] ToArray()
        {
            lock (gate)
            {
                var r = new float[written];
                int at = 0;
                foreach (var p in all) { Array.Copy(p, 0, r, at, p.Length); at += p.Length; }
                return r;
            }
        }
    }

    /// <summary>
    /// When a streaming clip should play: start once <see cref="PrebufferSamples"/> are buffered (or the utterance is
    /// complete); pause when the buffer runs dry before the end (synthesis slower than real time) and resume at the
    /// same threshold, so playback waits instead of inserting silence inside a word.
    /// </summary>
    public sealed class PlaybackGate
    {
        public readonly long PrebufferSamples;

        public PlaybackGate(long prebufferSamples) { PrebufferSamples = Math.Max(0, prebufferSamples); }

        /// <summary>True when the clip should be playing now.</summary>
        public bool ShouldPlay(AudioStream s, bool playing)
        {
            if (s.IsDrained) return false;
            long buffered = s.Buffered;
            if (s.IsComplete) return buffered > 0;
            if (playing) return buffered > 0;
            return buffered >= Math.Max(1, PrebufferSamples);
        }
    }
}
